"""Training that cannot silently diverge, and BatchNorm statistics that match the weights."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from torch import nn

from helpers.indices import Indices, collate_indices
from pipeline.engine.config import TrainConfig
from pipeline.engine.distributed import DistContext
from pipeline.engine.train import recompute_bn_statistics, train
from pipeline.errors import TrainingDiverged

REPO_ROOT = Path(__file__).resolve().parents[1]
SINGLE = DistContext(rank=0, local_rank=0, world_size=1, device=torch.device("cpu"))


def scripted_loss(values: list[float]):
    """A loss connected to the model's weight whose value at step i is ``values[i]``."""
    step = {"i": 0}

    def loss_fn(model: nn.Module, batch: torch.Tensor) -> torch.Tensor:
        value = values[min(step["i"], len(values) - 1)]
        step["i"] += 1
        return (model.weight * 0.0).sum() + torch.tensor(value)

    return loss_fn


def config(**overrides) -> TrainConfig:
    values = dict(epochs=2, batch_size=2, lr=0.1, warmup_epochs=0.0, schedule="cosine",
                  num_workers=0, device="cpu", val_every=0, grad_clip=None)
    return TrainConfig(**{**values, **overrides})


@pytest.mark.parametrize("bad, reason", [(float("nan"), "non-finite"),
                                         (float("inf"), "non-finite"),
                                         (50.0, "above 10x the mean 0.7 of the run's first 5 step(s)")])
def test_a_diverging_loss_stops_with_one_line_naming_the_params(tmp_path, bad, reason):
    # 8 items in batches of 2: 4 steps per epoch; step 7 (epoch 2, step 3) goes bad.
    loss_fn = scripted_loss([0.7] * 6 + [bad] + [0.7] * 10)
    with pytest.raises(TrainingDiverged) as caught:
        train(nn.Linear(1, 1), Indices(8), config=config(), loss_fn=loss_fn, ctx=SINGLE,
              checkpoint_dir=tmp_path / "ckpt", collate_fn=collate_indices, params_key="model.train")
    message = str(caught.value)
    assert "\n" not in message
    assert "epoch 2, step 3 (global step 7)" in message and reason in message
    for key in ("model.train.lr", "model.train.grad_clip", "model.train.warmup_epochs"):
        assert key in message


def test_an_explosion_at_the_second_step_of_a_short_run_is_caught(tmp_path):
    # A smoke-sized run has 3 steps: the reference is whatever steps came before.
    loss_fn = scripted_loss([3.7, 78.0, 1.0])
    with pytest.raises(TrainingDiverged, match=r"global step 2\): loss 78 \(above 10x the "
                                               r"mean 3.7 of the run's first 1 step"):
        train(nn.Linear(1, 1), Indices(6), config=config(epochs=1), loss_fn=loss_fn, ctx=SINGLE,
              checkpoint_dir=tmp_path / "ckpt", collate_fn=collate_indices, params_key="model.train")


def test_a_falling_loss_and_a_moderate_bump_train_to_the_end(tmp_path):
    loss_fn = scripted_loss([0.7, 0.6, 0.5, 0.5, 0.4, 3.0, 0.3, 0.3])   # 3.0 < 10 x 0.54
    history = train(nn.Linear(1, 1), Indices(8), config=config(), loss_fn=loss_fn, ctx=SINGLE,
                    checkpoint_dir=tmp_path / "ckpt", collate_fn=collate_indices)
    assert len(history.steps) == 8


DDP_SCRIPT = textwrap.dedent("""
    import sys
    from pathlib import Path
    import torch
    from torch import nn
    from pipeline.engine.config import TrainConfig
    from pipeline.engine.distributed import setup_distributed
    from pipeline.engine.train import train
    from pipeline.errors import TrainingDiverged
    from helpers.indices import Indices, collate_indices

    out = Path(sys.argv[1])
    ctx = setup_distributed("cpu")
    step = {"i": 0}

    def loss_fn(model, batch):
        step["i"] += 1
        bad = ctx.rank == 1 and step["i"] == 3          # only rank 1 sees it
        value = float("inf") if bad else 0.5
        return (model.module.weight if hasattr(model, "module") else model.weight).sum() * 0.0 + value

    config = TrainConfig(epochs=1, batch_size=1, lr=0.1, warmup_epochs=0.0, schedule="cosine",
                         num_workers=0, device="cpu", val_every=0, grad_clip=None)
    try:
        train(nn.Linear(1, 1, bias=False), Indices(8), config=config, loss_fn=loss_fn, ctx=ctx,
              checkpoint_dir=out / "ckpt", collate_fn=collate_indices, params_key="baseline.train")
    except TrainingDiverged as exc:
        (out / f"rank{ctx.rank}.txt").write_text(str(exc))
        sys.exit(3)
""")


def test_divergence_on_one_rank_stops_every_rank(tmp_path):
    script = tmp_path / "ddp_guard.py"
    script.write_text(DDP_SCRIPT)
    env = {**os.environ, "PYTHONPATH": f"{REPO_ROOT}{os.pathsep}{REPO_ROOT / 'tests'}",
           "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                           "--nproc_per_node=2", str(script), str(tmp_path)],
                          env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode != 0
    messages = {rank: (tmp_path / f"rank{rank}.txt").read_text() for rank in (0, 1)}
    assert "non-finite" in messages[1] and "diverged on another rank" in messages[0]
    for message in messages.values():
        assert "global step 3" in message and "baseline.train.lr" in message


def test_precise_bn_statistics_are_the_average_over_the_batches():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU())
    batches = [torch.randn(5, 3, 8, 8) * 7 + 3 for _ in range(4)]
    with torch.no_grad():
        pre = [model[0](b) for b in batches]
    expected_mean = torch.stack([p.mean(dim=(0, 2, 3)) for p in pre]).mean(0)
    expected_var = torch.stack([p.var(dim=(0, 2, 3), unbiased=True) for p in pre]).mean(0)
    assert not torch.allclose(model[1].running_mean, expected_mean)
    used = recompute_bn_statistics(model, iter(batches), model, SINGLE)
    assert used == 4
    torch.testing.assert_close(model[1].running_mean, expected_mean)
    torch.testing.assert_close(model[1].running_var, expected_var)
    assert model[1].momentum == 0.1          # restored


class FrozenNorm(nn.Sequential):
    """A model that keeps its BatchNorm in eval mode while training (as ``norm_eval``)."""

    def train(self, mode: bool = True):
        super().train(mode)
        self[1].eval()
        return self


def test_precise_bn_leaves_frozen_norms_and_models_without_norms_alone():
    frozen = FrozenNorm(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    frozen[1].running_mean.fill_(5.0)
    assert recompute_bn_statistics(frozen, iter([torch.randn(2, 3, 8, 8)]), frozen, SINGLE) == 0
    assert torch.all(frozen[1].running_mean == 5.0)
    assert recompute_bn_statistics(nn.Linear(2, 2), iter([torch.randn(2, 2)]),
                                   nn.Linear(2, 2), SINGLE) == 0
