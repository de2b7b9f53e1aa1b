"""Write mmaction2's detector state-dict layout (``key [shape]`` per line) for every preset.

This is an independent statement of the layout, written from the rules in
``shared/reference/ava-and-mmaction2-facts.md`` (sections 2.1, 2.2, 2.3, 4 and 5.3), mmcv's
``NonLocal3d`` naming, mmaction2's ``ACRNHead`` / ``FBOHead`` attribute names and its
``VisionTransformer`` (``vit_mae.py``), NOT from ``pipeline.models``: it must never import the model code, so a
naming slip there cannot silently agree with itself. Run it only when a preset is added:

    .venv/bin/python tests/expected_keys/generate.py

The per-preset table below restates each mmaction2 config in that config's own terms
(depth, non-local, fusion kernel, context, MLP head, shared head).
"""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent
NUM_CLASSES = 81
EXPANSION = 4
STAGE_BLOCKS = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3)}
# Non-local blocks of the zoo's "-nl" configs: layer2 blocks 0 and 2, layer3 blocks 0, 2 and 4.
ZOO_NON_LOCAL = {(1, 0), (1, 2), (2, 0), (2, 2), (2, 4)}


def conv_bn(prefix: str, weight: list[int], out: list[tuple[str, list[int]]]) -> None:
    """An mmcv ConvModule with BN3d: bias-free conv, then BN with its running statistics."""
    out.append((f"{prefix}.conv.weight", weight))
    channels = weight[0]
    for name in ("weight", "bias", "running_mean", "running_var"):
        out.append((f"{prefix}.bn.{name}", [channels]))
    out.append((f"{prefix}.bn.num_batches_tracked", []))


def non_local(prefix: str, channels: int, out: list[tuple[str, list[int]]]) -> None:
    """mmcv NonLocal3d, embedded Gaussian, sub_sample=True: phi and g are wrapped with a pool."""
    inter = channels // 2
    for name in ("g.0", "theta", "phi.0"):
        out.append((f"{prefix}.{name}.conv.weight", [inter, channels, 1, 1, 1]))
        out.append((f"{prefix}.{name}.conv.bias", [inter]))
    conv_bn(f"{prefix}.conv_out", [channels, inter, 1, 1, 1], out)


def pathway(prefix: str, *, depth: int, base: int, stem_t: int, inflated_stages: set[int],
            lateral_in: list[int] | None, nl: set[tuple[int, int]],
            out: list[tuple[str, list[int]]]) -> list[int]:
    """Keys of one ResNet3d pathway; returns its output channels after the stem and each stage.

    ``lateral_in[s]`` = channels concatenated onto the input of stage s by a lateral
    connection (SlowFast's slow pathway), or None.
    """
    conv_bn(f"{prefix}conv1", [base, 3, stem_t, 7, 7], out)
    inplanes = base
    widths = [base]
    for s, blocks in enumerate(STAGE_BLOCKS[depth]):
        planes = base * 2 ** s
        width = planes * EXPANSION
        for b in range(blocks):
            cin = width if b else inplanes + (lateral_in[s] if lateral_in else 0)
            block = f"{prefix}layer{s + 1}.{b}"
            kt = 3 if s in inflated_stages else 1
            conv_bn(f"{block}.conv1", [planes, cin, kt, 1, 1], out)
            conv_bn(f"{block}.conv2", [planes, planes, 1, 3, 3], out)
            conv_bn(f"{block}.conv3", [width, planes, 1, 1, 1], out)
            if b == 0:
                conv_bn(f"{block}.downsample", [width, cin, 1, 1, 1], out)
            if (s, b) in nl:
                non_local(f"{block}.non_local_block", width, out)
        inplanes = width
        widths.append(width)
    return widths


def acrn(in_channels: int, out_channels: int, extra_convs: int,
         out: list[tuple[str, list[int]]]) -> None:
    """ACRNHead: conv1 1x1x1 on [actor tiled, frame context] (2C in), conv2 (1,3,3), then
    ``convs.i`` (1,3,3) for each further conv; every one an mmcv ConvModule with BN3d."""
    prefix = "roi_head.shared_head"
    conv_bn(f"{prefix}.conv1", [out_channels, 2 * in_channels, 1, 1, 1], out)
    conv_bn(f"{prefix}.conv2", [out_channels, out_channels, 1, 3, 3], out)
    for i in range(extra_convs):
        conv_bn(f"{prefix}.convs.{i}", [out_channels, out_channels, 1, 3, 3], out)


def fbo_non_local(st_channels: int, lt_channels: int, latent: int, layers: int,
                  out: list[tuple[str, list[int]]]) -> None:
    """FBOHead(fbo=FBONonLocal): plain Conv3d projections of st and lt (weight + bias), then
    per layer four bias-carrying ConvModules without norm and a LayerNorm over [latent,1,1,1]."""
    prefix = "roi_head.shared_head.fbo"
    for name, cin in (("st_feat_conv", st_channels), ("lt_feat_conv", lt_channels)):
        out += [(f"{prefix}.{name}.weight", [latent, cin, 1, 1, 1]),
                (f"{prefix}.{name}.bias", [latent])]
    for k in range(1, layers + 1):
        layer = f"{prefix}.non_local_layer_{k}"
        for name in ("st_feat_conv", "lt_feat_conv", "global_conv", "out_conv"):
            out += [(f"{layer}.{name}.conv.weight", [latent, latent, 1, 1, 1]),
                    (f"{layer}.{name}.conv.bias", [latent])]
        out += [(f"{layer}.ln.weight", [latent, 1, 1, 1]), (f"{layer}.ln.bias", [latent, 1, 1, 1])]


def head(in_channels: int, mlp: bool, out: list[tuple[str, list[int]]]) -> None:
    prefix = "roi_head.bbox_head.fc_cls"
    if mlp:
        out += [(f"{prefix}.0.weight", [in_channels, in_channels]), (f"{prefix}.0.bias", [in_channels]),
                (f"{prefix}.2.weight", [NUM_CLASSES, in_channels]), (f"{prefix}.2.bias", [NUM_CLASSES])]
    else:
        out += [(f"{prefix}.weight", [NUM_CLASSES, in_channels]), (f"{prefix}.bias", [NUM_CLASSES])]


def slowonly(*, depth: int = 50, base: int = 64, nl: bool = False, context: bool = False,
             mlp: bool = False, lfb: str | None = None) -> list[tuple[str, list[int]]]:
    """``lfb``: None, "nl" (2 layers, latent 512, bank width 2048) or "max"/"avg" (no keys);
    the classifier then sees the RoI vector concatenated with the operator's output."""
    out: list[tuple[str, list[int]]] = []
    widths = pathway("backbone.", depth=depth, base=base, stem_t=1, inflated_stages={2, 3},
                     lateral_in=None, nl=ZOO_NON_LOCAL if nl else set(), out=out)
    roi = widths[-1] * (2 if context else 1)
    if lfb == "nl":
        fbo_non_local(roi, 2048, 512, 2, out)
        head(roi + 512, mlp, out)
    elif lfb in ("max", "avg"):
        head(roi + 2048, mlp, out)
    else:
        head(roi, mlp, out)
    return out


def slowfast(*, fusion_kernel: int, context: bool = False, mlp: bool = False,
             acrn_out: int | None = None) -> list[tuple[str, list[int]]]:
    """SlowFast R50: slow base 64 with laterals, fast base 64/8 = 8, lateral doubles channels."""
    out: list[tuple[str, list[int]]] = []
    fast: list[tuple[str, list[int]]] = []
    fast_widths = pathway("backbone.fast_path.", depth=50, base=8, stem_t=5,
                          inflated_stages={0, 1, 2, 3}, lateral_in=None, nl=set(), out=fast)
    lateral_in = [2 * w for w in fast_widths[:4]]          # stem, layer1, layer2, layer3
    slow_widths = pathway("backbone.slow_path.", depth=50, base=64, stem_t=1,
                          inflated_stages={2, 3}, lateral_in=lateral_in, nl=set(), out=out)
    for name, c in zip(["conv1_lateral", "layer1_lateral", "layer2_lateral", "layer3_lateral"],
                       fast_widths[:4]):
        out.append((f"backbone.slow_path.{name}.conv.weight", [2 * c, c, fusion_kernel, 1, 1]))
    out += fast
    roi = (slow_widths[-1] + fast_widths[-1]) * (2 if context else 1)
    if acrn_out is not None:
        acrn(roi, acrn_out, 0, out)
        roi = acrn_out
    head(roi, mlp, out)
    return out


def vit(*, embed: int, depth: int, frames: int = 16, recognizer: bool = False
        ) -> list[tuple[str, list[int]]]:
    """mmaction2's ``VisionTransformer`` (vit_mae.py): mmcv ``PatchEmbed`` (Conv3d
    ``projection``, tubelet 2x16x16), the fixed sinusoid ``pos_embed`` buffer over
    (frames / 2) x 14 x 14 tokens at 224 px, blocks with ``q_bias``/``v_bias`` and a bias-free
    ``qkv``, mmcv ``FFN`` (``layers.0.0``, ``layers.1``; hidden 4x), then ``norm``
    (``use_mean_pooling=False``, the detectors) or ``fc_norm`` (the K400 recognizers, whose
    ``cls_head.fc_cls`` maps ``embed`` to 400 classes). Detectors get the linear AVA head."""
    out: list[tuple[str, list[int]]] = [
        ("backbone.patch_embed.projection.weight", [embed, 3, 2, 16, 16]),
        ("backbone.patch_embed.projection.bias", [embed]),
        ("backbone.pos_embed", [1, frames // 2 * 14 * 14, embed])]
    for i in range(depth):
        block = f"backbone.blocks.{i}"
        out += [(f"{block}.norm1.weight", [embed]), (f"{block}.norm1.bias", [embed]),
                (f"{block}.attn.q_bias", [embed]), (f"{block}.attn.v_bias", [embed]),
                (f"{block}.attn.qkv.weight", [3 * embed, embed]),
                (f"{block}.attn.proj.weight", [embed, embed]), (f"{block}.attn.proj.bias", [embed]),
                (f"{block}.norm2.weight", [embed]), (f"{block}.norm2.bias", [embed]),
                (f"{block}.mlp.layers.0.0.weight", [4 * embed, embed]),
                (f"{block}.mlp.layers.0.0.bias", [4 * embed]),
                (f"{block}.mlp.layers.1.weight", [embed, 4 * embed]),
                (f"{block}.mlp.layers.1.bias", [embed])]
    norm = "fc_norm" if recognizer else "norm"
    out += [(f"backbone.{norm}.weight", [embed]), (f"backbone.{norm}.bias", [embed])]
    if recognizer:
        out += [("cls_head.fc_cls.weight", [400, embed]), ("cls_head.fc_cls.bias", [400])]
    else:
        head(embed, False, out)
    return out


LAYOUTS = {
    # configs/detection/slowonly (AVA 2.1)
    "slowonly_kinetics400-pretrained-r50_8xb16-4x16x1-20e_ava21-rgb": slowonly(),
    "slowonly_kinetics700-pretrained-r50_8xb16-4x16x1-20e_ava21-rgb": slowonly(),
    "slowonly_kinetics400-pretrained-r50-nl_8xb16-4x16x1-20e_ava21-rgb": slowonly(nl=True),
    "slowonly_kinetics400-pretrained-r50-nl_8xb16-8x8x1-20e_ava21-rgb": slowonly(nl=True),
    "slowonly_kinetics400-pretrained-r101_8xb16-8x8x1-20e_ava21-rgb": slowonly(depth=101),
    # configs/detection/slowonly (AVA-Kinetics training, AVA 2.2 val)
    "slowonly_k400-pre-r50_8xb8-4x16x1-10e_ava-kinetics-rgb": slowonly(),
    "slowonly_k700-pre-r50_8xb8-4x16x1-10e_ava-kinetics-rgb": slowonly(),
    "slowonly_k400-pre-r50_8xb8-8x8x1-10e_ava-kinetics-rgb": slowonly(),
    "slowonly_k700-pre-r50_8xb8-8x8x1-10e_ava-kinetics-rgb": slowonly(),
    "slowonly_k700-pre-r50-context_8xb8-8x8x1-10e_ava-kinetics-rgb": slowonly(context=True),
    "slowonly_k700-pre-r50-context-temporal-max_8xb8-8x8x1-10e_ava-kinetics-rgb":
        slowonly(context=True),
    "slowonly_k700-pre-r50-context-temporal-max-nl-head_8xb8-8x8x1-10e_ava-kinetics-rgb":
        slowonly(context=True, mlp=True),
    "slowonly_k700-pre-r50-context-temporal-max-nl-head_8xb8-8x8x1-focal-10e_ava-kinetics-rgb":
        slowonly(context=True, mlp=True),
    "slowonly_k700-pre-r50_8xb8-16x4x1-10e-tricks_ava-kinetics-rgb": slowonly(context=True, mlp=True),
    # configs/detection/slowfast
    "slowfast_kinetics400-pretrained-r50_8xb16-4x16x1-20e_ava21-rgb": slowfast(fusion_kernel=5),
    "slowfast_kinetics400-pretrained-r50-context_8xb16-4x16x1-20e_ava21-rgb":
        slowfast(fusion_kernel=5, context=True),
    "slowfast_kinetics400-pretrained-r50_8xb8-8x8x1-20e_ava21-rgb": slowfast(fusion_kernel=7),
    "slowfast_kinetics400-pretrained-r50_8xb6-8x8x1-cosine-10e_ava22-rgb": slowfast(fusion_kernel=7),
    "slowfast_kinetics400-pretrained-r50-temporal-max_8xb6-8x8x1-cosine-10e_ava22-rgb":
        slowfast(fusion_kernel=7),
    "slowfast_r50-k400-pre-temporal-max-focal-alpha3-gamma1_8xb6-8x8x1-cosine-10e_ava22-rgb":
        slowfast(fusion_kernel=7),
    # configs/detection/acrn: SlowFast R50 8x8, ACRNHead(in_channels=4608, out_channels=2304)
    "slowfast-acrn_kinetics400-pretrained-r50_8xb8-8x8x1-cosine-10e_ava21-rgb":
        slowfast(fusion_kernel=7, acrn_out=2304),
    "slowfast-acrn_kinetics400-pretrained-r50_8xb8-8x8x1-cosine-10e_ava22-rgb":
        slowfast(fusion_kernel=7, acrn_out=2304),
    # configs/detection/lfb: SlowOnly R50 4x16; bbox head in 2560 (nl) / 4096 (max)
    "slowonly-lfb-nl_kinetics400-pretrained-r50_8xb12-4x16x1-20e_ava21-rgb": slowonly(lfb="nl"),
    "slowonly-lfb-max_kinetics400-pretrained-r50_8xb12-4x16x1-20e_ava21-rgb": slowonly(lfb="max"),
    # the bank-inference config: LFBInferHead has no parameters, bbox head in 2048
    "slowonly-lfb_ava-pretrained-r50_infer-4x16x1_ava21-rgb": slowonly(),
    # configs/detection/videomae: ViT-B / ViT-L, 16 frames, linear head on the map's width
    "vit-base-p16_videomae-k400-pre_8xb8-16x4x1-20e-adamw_ava-kinetics-rgb":
        vit(embed=768, depth=12),
    "vit-large-p16_videomae-k400-pre_8xb8-16x4x1-20e-adamw_ava-kinetics-rgb":
        vit(embed=1024, depth=24),
    # the project's CPU default: SlowOnly R50 8x8 layout at 1/8 width
    "tiny": slowonly(base=8),
    # its ViT counterpart: 2 blocks of width 64 over 4 frames
    "tiny-vit": vit(embed=64, depth=2, frames=4),
}

RECOGNIZER_LAYOUTS = {
    # the K400 VideoMAE recognizers the two ViT detector configs start from
    # (configs/recognition/videomae/vit-{base,large}-p16_videomae-k400-pre_16x4x1_kinetics-400)
    "recognizer_vit-base-p16_videomae-k400-pre_16x4x1_kinetics-400":
        vit(embed=768, depth=12, recognizer=True),
    "recognizer_vit-large-p16_videomae-k400-pre_16x4x1_kinetics-400":
        vit(embed=1024, depth=24, recognizer=True),
}


def main() -> None:
    for name, keys in {**LAYOUTS, **RECOGNIZER_LAYOUTS}.items():
        lines = [f"{key} [{','.join(map(str, shape))}]" for key, shape in keys]
        (HERE / f"{name}.txt").write_text("\n".join(lines) + "\n")
    print(f"wrote {len(LAYOUTS) + len(RECOGNIZER_LAYOUTS)} key lists to {HERE}")


if __name__ == "__main__":
    main()
