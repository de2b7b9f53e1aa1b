"""The one description of a detector: backbone, RoI pooling, relation module, classifier, loss
and targets.

A plain frozen dataclass so presets can be shared safely and overridden with
``dataclasses.replace``; the integrator maps params.yaml onto it. Every field is checked in
``__post_init__`` and a bad value raises ``ValueError`` naming the field.

Class columns follow mmaction2: ``num_classes`` includes a background column 0 that is never a
target and never scored (an mmaction2 AVA checkpoint has 81 outputs for the 80 AVA action ids).
A label-map id ``k`` (AVA ids are 1..80) is column ``k`` of the logits and targets.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

TEMPORAL_POOLS = ("avg", "max")
CLASSIFIERS = ("linear", "mlp")
RELATIONS = ("none", "acrn", "lfb_nl", "lfb_max", "lfb_avg")
BANK_RELATIONS = ("lfb_nl", "lfb_max", "lfb_avg")
LOSSES = ("bce", "focal")


@dataclass(frozen=True)
class ModelConfig:
    """Architecture and training-target settings; defaults are the zoo's SlowOnly R50 4x16."""

    backbone: str = "slowonly"
    """A name in ``pipeline.models.backbones.BACKBONES``: "slowonly" (one ResNet3d pathway),
    "slowfast" (slow + fast pathways, lateral fusion) or "vit" (VideoMAE vision transformer).
    The backbone checks its own fields below when it is built (``from_config``); the fields of
    other backbones are unused."""
    # ResNet3d fields (slowonly, slowfast)
    depth: int = 50
    """ResNet depth of the (slow) pathway: 50, 101 or 152 (bottleneck blocks)."""
    base_channels: int = 64
    """Stem width of the (slow) pathway; 64 in the zoo, smaller for CPU experiments."""
    stem_kernel: tuple[int, int, int] = (1, 7, 7)
    """Stem conv kernel (t, h, w) of the (slow) pathway."""
    inflate: tuple[int, int, int, int] = (0, 0, 1, 1)
    """Per stage: 1 = blocks use a (3,1,1) first conv (temporal), 0 = 1x1x1."""
    spatial_strides: tuple[int, int, int, int] = (1, 2, 2, 1)
    """Per-stage spatial stride; the stem adds 4, so (1,2,2,1) gives output stride 16."""
    non_local: tuple[tuple[int, ...], ...] = ()
    """Empty = no non-local blocks; else per stage, per block 1 = embedded-Gaussian
    non-local block after that block (applies to the slow pathway of a SlowFast)."""
    resample_rate: int = 8
    """SlowFast tau: the slow pathway sees every tau-th frame of the clip."""
    speed_ratio: int = 8
    """SlowFast alpha: frame-rate ratio fast/slow (lateral conv temporal stride)."""
    channel_ratio: int = 8
    """SlowFast 1/beta: the fast pathway is this many times narrower than the slow one."""
    fusion_kernel: int = 5
    """SlowFast lateral conv temporal kernel (5 for 4x16, 7 for 8x8 in the zoo)."""
    fast_stem_kernel: tuple[int, int, int] = (5, 7, 7)
    """SlowFast fast-pathway stem kernel; all fast blocks are inflated."""
    # ViT fields (vit)
    vit_size: str = "vit-base"
    """``pipeline.models.vit.VIT_CONFIGS`` name: "vit-base" (768 wide, 12 blocks), "vit-large"
    (1024, 24) or "tiny" (64, 2; CPU tests); its position table covers ``clip_len`` frames."""
    drop_path_rate: float = 0.2
    """Stochastic depth of the last block (rising linearly from 0 over the blocks)."""
    # every backbone
    clip_len: int = 4
    """Frames given to the model (for SlowFast: the fast pathway's frames, e.g. 32)."""
    frame_interval: int = 16
    """Raw-frame step between clip frames (the loader's business; kept here for provenance)."""
    temporal_pool: str = "avg"
    """Pooling over time before RoIAlign: "avg" or "max"."""
    roi_output_size: int = 8
    """RoIAlign output size (square)."""
    with_context: bool = False
    """Concatenate the whole frame's average-pooled feature to every RoI feature."""
    classifier: str = "linear"
    """The action classifier (mmaction2's ``roi_head.bbox_head``): "linear" or "mlp"
    (Linear-ReLU-Linear, hidden = input width)."""
    relation: str = "none"
    """What relates each RoI to more than its own box, between RoI pooling and the classifier
    (mmaction2's ``roi_head.shared_head``): "none";
    "acrn" (actor-context relation convs); or a long-term feature-bank operator over bank
    features given to ``forward``: "lfb_nl" (non-local), "lfb_max", "lfb_avg". The bank
    operator's output is concatenated to the short-term RoI vector."""
    acrn_out_channels: int | None = None
    """ACRN conv width; None = the RoI feature width (2304 for SlowFast R50, as in the zoo)."""
    acrn_stride: int = 1
    """Spatial stride of ACRN's first (1,3,3) conv."""
    acrn_num_convs: int = 1
    """Number of (1,3,3) conv-BN-ReLU after ACRN's 1x1x1 conv (keys ``conv2``, ``convs.i``)."""
    lfb_channels: int | None = None
    """Width D of a bank feature; None = this detector's own RoI vector width
    (``Detector.feature_channels``, 2048 for R50), i.e. a bank filled by the same architecture."""
    lfb_num_lt_feat: int = 300
    """Bank slots S per RoI: window 60 s x 5 features in the zoo; ``forward`` checks it."""
    lfb_latent_channels: int = 512
    """lfb_nl: width of the non-local layers (and of the operator's output)."""
    lfb_num_layers: int = 2
    """lfb_nl: stacked non-local layers, each with a residual on the short-term feature."""
    lfb_st_dropout: float = 0.2
    """lfb_nl: dropout on the projected short-term feature."""
    lfb_lt_dropout: float = 0.2
    """lfb_nl: dropout on the projected bank features."""
    lfb_nl_dropout: float = 0.2
    """lfb_nl: dropout on each non-local layer's output, before the residual."""
    lfb_pre_activate: bool = True
    """lfb_nl: LayerNorm and ReLU before each layer's out conv (zoo); False = out conv, then
    LayerNorm, ReLU after the residual."""
    lfb_layer_norm: bool = True
    """lfb_nl: apply each layer's LayerNorm (False drops it and its ``ln.*`` keys)."""
    lfb_zero_init_out_conv: bool = False
    """lfb_nl: start each out conv at zero, so the operator begins as a pass-through."""
    lfb_include_empty_slots: bool = False
    """lfb_nl/lfb_max/lfb_avg: read all ``lfb_num_lt_feat`` slots, empty ones as zero features,
    exactly as mmaction2 does (softmax weight, max and mean over all slots; the zoo presets),
    instead of masking them out (see ``pipeline.models.fbo``)."""
    lfb_position: bool = False
    """lfb_nl: add embeddings of each feature's box and time offset (not in mmaction2, whose
    checkpoints have none; keys ``fbo.st_position``, ``fbo.lt_position``)."""
    dropout: float = 0.5
    """Dropout on the RoI feature map before spatial max pooling."""
    num_classes: int = 81
    """Output columns including the unused background column 0."""
    loss: str = "bce"
    """"bce" or "focal" (mmaction2 form: mean of alpha * (1 - p_t)**gamma * BCE)."""
    focal_alpha: float = 1.0
    focal_gamma: float = 0.0
    assigner_iou_threshold: float = 0.9
    """A proposal inherits a ground-truth box's labels when IoU >= this."""
    rois_per_image: int = 32
    """RoIs sampled per clip for training (positives first, then negatives)."""
    train_negatives: bool = False
    """Keep all-zero (negative) RoIs in the loss; mmaction2 drops them."""

    def __post_init__(self) -> None:
        def fail(field: str, why: str) -> None:
            raise ValueError(f"ModelConfig.{field}={getattr(self, field)!r}: {why}")

        if not self.backbone:
            fail("backbone", "must name a backbone")
        if not 0.0 <= self.drop_path_rate < 1.0:
            fail("drop_path_rate", "must be in [0, 1)")
        if self.clip_len < 1:
            fail("clip_len", "must be positive")
        if self.frame_interval < 1:
            fail("frame_interval", "must be positive")
        if self.temporal_pool not in TEMPORAL_POOLS:
            fail("temporal_pool", f"must be one of {', '.join(TEMPORAL_POOLS)}")
        if self.roi_output_size < 1:
            fail("roi_output_size", "must be positive")
        if self.classifier not in CLASSIFIERS:
            fail("classifier", f"must be one of {', '.join(CLASSIFIERS)}")
        if not 0.0 <= self.dropout < 1.0:
            fail("dropout", "must be in [0, 1)")
        if self.relation not in RELATIONS:
            fail("relation", f"must be one of {', '.join(RELATIONS)}")
        if self.relation == "acrn" and self.with_context:
            fail("with_context", "must be False with relation 'acrn', which already relates "
                 "each actor to the whole frame")
        for name in ("acrn_out_channels", "lfb_channels"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                fail(name, "must be positive (or None)")
        for name in ("acrn_stride", "acrn_num_convs", "lfb_num_lt_feat", "lfb_latent_channels",
                     "lfb_num_layers"):
            if getattr(self, name) < 1:
                fail(name, "must be positive")
        for name in ("lfb_st_dropout", "lfb_lt_dropout", "lfb_nl_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                fail(name, "must be in [0, 1)")
        if self.num_classes < 2:
            fail("num_classes", "must be at least 2 (column 0 is the unused background)")
        if self.loss not in LOSSES:
            fail("loss", f"must be one of {', '.join(LOSSES)}")
        if self.focal_alpha <= 0:
            fail("focal_alpha", "must be positive")
        if self.focal_gamma < 0:
            fail("focal_gamma", "must be >= 0")
        if not 0.0 < self.assigner_iou_threshold <= 1.0:
            fail("assigner_iou_threshold", "must be in (0, 1]")
        if self.rois_per_image < 1:
            fail("rois_per_image", "must be positive")

    @property
    def head_name(self) -> str:
        """The head as params ``model.head`` names it: the relation (``acrn``, ``lfb_*``)
        when there is one, else the classifier (``linear``, ``mlp``)."""
        return self.relation if self.relation != "none" else self.classifier

    @property
    def uses_bank(self) -> bool:
        """True when the detector needs long-term bank features (an ``lfb_*`` relation)."""
        return self.relation in BANK_RELATIONS

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ModelConfig:
        """Rebuild from ``dataclasses.asdict`` output (lists become tuples again)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"ModelConfig has no field(s) {', '.join(unknown)}")

        def as_tuple(value: Any) -> Any:
            return tuple(as_tuple(v) for v in value) if isinstance(value, (list, tuple)) else value

        return cls(**{k: as_tuple(v) for k, v in values.items()})
