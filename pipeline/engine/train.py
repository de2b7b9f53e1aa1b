"""The training loop: plain, top to bottom, resumable at any checkpoint.

Loop order per step: set lr -> forward (autocast on CUDA with ``amp``, see ``precision``) -> backward -> clip -> step ->
zero grads -> log; a checkpoint every ``checkpoint_every_steps`` and at every epoch end,
validation every ``val_every`` epochs. A run finds the newest checkpoint in its checkpoint
folder and continues from it; with ``deterministic`` it reaches the same weights as a run that
was never interrupted (same order, same augmentations, same RNG draws).
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import os
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from pipeline.data.loader import make_loader
from pipeline.data.sampler import EpochBatchSampler
from pipeline.engine import distributed as dist_utils
from pipeline.engine.checkpoint import (check_resumable, fingerprint_entries, finish_run,
                                        is_finished, load_latest_checkpoint, rng_state,
                                        save_checkpoint, set_rng_state)
from pipeline.engine.config import RUNTIME_FIELDS, TrainConfig
from pipeline.engine.curves import write_curves
from pipeline.engine.distributed import DistContext
from pipeline.engine.optimizer import build_optimizer
from pipeline.engine.precision import autocast, autocast_dtype, configure_cudnn, needs_loss_scaling
from pipeline.engine.schedule import LRSchedule
from pipeline.errors import TrainingDiverged

log = logging.getLogger(__name__)

# A loss above this many times the mean of the run's first steps means the run has diverged
# (a healthy BCE or focal loss only falls from its start); so does a non-finite loss.
DIVERGENCE_FACTOR = 10.0
REFERENCE_STEPS = 5

LossFn = Callable[[nn.Module, object], torch.Tensor]
ValidateFn = Callable[[nn.Module, int], dict[str, float]]


@dataclass
class TrainHistory:
    """Curves so far; stored in checkpoints so a resumed run writes the whole history."""

    steps: list[dict] = field(default_factory=list)
    epochs: list[dict] = field(default_factory=list)


def seed_everything(seed: int, *, deterministic: bool) -> None:
    """Seed Python, NumPy and torch; with ``deterministic``, also pick deterministic kernels."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False


def run_lr(config: TrainConfig, world_size: int, *, announce: bool = True) -> float:
    """The base learning rate this run uses on ``world_size`` processes (logged if
    ``announce``, i.e. by the main rank).

    With ``config.base_batch_size`` set: ``lr * world_size * batch_size / base_batch_size``
    (mmaction2's ``--auto-scale-lr``); without: ``config.lr``.
    """
    lr = config.effective_lr(world_size)
    if not announce:
        return lr
    if config.base_batch_size is None:
        log.info("lr %.6g (not scaled: base_batch_size is null; total batch %d = %d x %d)",
                 lr, world_size * config.batch_size, world_size, config.batch_size)
    else:
        log.info("lr %.6g = %.6g x (%d processes x %d clips) / base batch %d", lr, config.lr,
                 world_size, config.batch_size, config.base_batch_size)
    return lr


def divergence(loss: float, history: TrainHistory) -> str | None:
    """Why ``loss`` means the run diverged, or None: non-finite, or more than
    ``DIVERGENCE_FACTOR`` times the mean of the first (up to ``REFERENCE_STEPS``) steps' losses."""
    if not np.isfinite(loss):
        return "non-finite"
    first = [row["loss"] for row in history.steps[:REFERENCE_STEPS]]
    if first:   # from the second step on: short runs (a smoke test) are guarded too
        reference = float(np.mean(first))
        if loss > DIVERGENCE_FACTOR * reference:
            return (f"above {DIVERGENCE_FACTOR:g}x the mean {reference:.4g} of the run's first "
                    f"{len(first)} step(s)")
    return None


def recompute_bn_statistics(model: nn.Module, batches, forward: Callable[[object], object],
                            ctx: DistContext) -> int:
    """Precise BatchNorm statistics: reset the running mean and variance of every BatchNorm
    layer that trains, then average them over ``batches`` (train-mode forwards, no gradient),
    and across ranks. Returns the number of batches used.

    Why: after a short run (a smoke test, a few hundred steps of a small model) the running
    statistics are still mostly their initial values, so eval-mode features, which the bank
    and the heads are built on, have a scale the training never saw; the heads trained on
    them then start with exploding losses. The running averages of a long run change little.
    """
    model.train()
    norms = [m for m in model.modules()
             if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training
             and m.track_running_stats]
    if not norms:
        return 0
    momenta = [m.momentum for m in norms]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None          # cumulative average over the batches below
    count = 0
    with torch.no_grad():
        for batch in batches:
            forward(batch)
            count += 1
    for norm, momentum in zip(norms, momenta):
        norm.momentum = momentum
    dist_utils.average_tensors([t for m in norms for t in (m.running_mean, m.running_var)], ctx)
    return count


def parameter_digest(model: nn.Module) -> str:
    """SHA-256 of all parameter bytes: equal on every rank while DDP keeps replicas in sync."""
    digest = hashlib.sha256()
    for name, param in model.named_parameters():
        digest.update(name.encode())
        digest.update(param.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def train(model: nn.Module, dataset: torch.utils.data.Dataset, *, config: TrainConfig,
          loss_fn: LossFn, ctx: DistContext, checkpoint_dir: str | Path,
          curves_dir: str | Path | None = None, validate: ValidateFn | None = None,
          fingerprint: Mapping[str, object] | None = None,
          collate_fn: Callable[[list], object] | None = None,
          params_key: str = "train") -> TrainHistory:
    """Train ``model`` on ``dataset`` (collated into ``Batch``) and return its curves.

    ``loss_fn(model, batch)`` moves the batch to the device and returns the scalar loss; it
    receives the DDP-wrapped model when distributed. ``validate(model, epoch)`` runs on every
    rank (it may shard work) and returns metrics on the main rank. ``fingerprint`` (flat
    entries, see ``checkpoint.fingerprint_entries``) names what shapes the result besides
    ``config`` (model config, data settings, input contents); this loop adds ``config``'s
    result-shaping fields, the global batch and the steps per epoch. An unfinished run of
    another fingerprint in ``checkpoint_dir`` is refused (``ResumeRefused``: what differs, how
    to start over), never deleted; a finished one is moved to ``finished/`` and the run starts
    fresh; when this run ends its checkpoints move there too. The model's final weights are in
    ``model`` on return; only the main rank writes files.
    ``collate_fn`` replaces the default ``collate_samples`` (e.g. batches of cached features);
    it gets the dataset items of one batch and returns anything with ``len()``.
    ``params_key`` (e.g. ``model.train``) names the params group in a divergence message:
    a non-finite or exploding loss on any rank stops every rank with ``TrainingDiverged``.
    """
    device = ctx.device
    model.to(device)
    base_lr = run_lr(config, ctx.world_size, announce=ctx.is_main)
    optimizer = build_optimizer(model, config, lr=base_lr, params_key=params_key)
    amp_dtype = autocast_dtype(device, config.amp, config.amp_dtype)
    scaler = torch.amp.GradScaler("cuda", enabled=needs_loss_scaling(amp_dtype))
    configure_cudnn(device, deterministic=config.deterministic)
    sampler = EpochBatchSampler(len(dataset), config.batch_size, seed=config.seed,
                                rank=ctx.rank, world_size=ctx.world_size)
    steps_per_epoch = sampler.batches_per_epoch
    schedule = replace(LRSchedule.from_config(config, steps_per_epoch), base_lr=base_lr)
    history = TrainHistory()
    epoch, step_in_epoch, global_step = 0, 0, 0
    torch.manual_seed(config.seed + ctx.rank)  # per-rank dropout draws

    shaping = {k: v for k, v in asdict(config).items()
               if k not in RUNTIME_FIELDS and k != "batch_size"}   # per process: see global_batch
    fingerprint = {**(fingerprint or {}), **fingerprint_entries(params_key, shaping),
                   "global_batch": config.batch_size * ctx.world_size,
                   "steps_per_epoch": steps_per_epoch}
    checkpoint = load_latest_checkpoint(checkpoint_dir)
    if checkpoint is not None and is_finished(checkpoint):
        log.info("the checkpoints in %s are of a finished run: starting a new one", checkpoint_dir)
        dist_utils.barrier(ctx)  # everyone has read before the main rank moves them
        if ctx.is_main:
            finish_run(checkpoint_dir)
        checkpoint = None
    if checkpoint is not None:
        check_resumable(checkpoint, fingerprint, checkpoint_dir=checkpoint_dir,
                        world_size=ctx.world_size, batch_key=f"{params_key}.batch_size")
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        scaler.load_state_dict(checkpoint["scaler"])
        epoch, step_in_epoch = checkpoint["epoch"], checkpoint["step_in_epoch"]
        global_step = checkpoint["global_step"]
        history = TrainHistory(**checkpoint["history"])
        if len(checkpoint["rng"]) == ctx.world_size:
            set_rng_state(checkpoint["rng"][ctx.rank])
        else:
            log.warning("resuming on %d ranks from a %d-rank checkpoint: RNG streams differ",
                        ctx.world_size, len(checkpoint["rng"]))
        log.info("resuming at epoch %d, step %d of %d", epoch, step_in_epoch, steps_per_epoch)
    dist_utils.barrier(ctx)

    wrapped = model
    if ctx.distributed:
        wrapped = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
    collate = {} if collate_fn is None else {"collate_fn": collate_fn}
    loader = make_loader(dataset, batch_sampler=sampler, num_workers=config.num_workers,
                         prefetch_factor=config.prefetch_factor,
                         pin_memory=device.type == "cuda", **collate)

    def save(epoch_: int, step_in_epoch_: int) -> None:
        rng = dist_utils.all_gather_objects(rng_state(), ctx)
        # Replicas must agree before one of them is saved as "the" model.
        digests = dist_utils.all_gather_objects(parameter_digest(model), ctx)
        if len(set(digests)) > 1:
            raise RuntimeError(f"DDP replicas hold different weights at step {global_step}")
        if ctx.is_main:
            state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                     "scaler": scaler.state_dict(), "epoch": epoch_,
                     "step_in_epoch": step_in_epoch_, "global_step": global_step, "rng": rng,
                     "config": asdict(config), "fingerprint": fingerprint,
                     "world_size": ctx.world_size,
                     "replica_digests": digests,
                     "history": asdict(history)}
            save_checkpoint(checkpoint_dir, state, step=global_step, keep=config.keep_checkpoints)

    while epoch < config.epochs:
        sampler.set_epoch(epoch, start_batch=step_in_epoch)
        wrapped.train()
        progress = tqdm(loader, total=steps_per_epoch, initial=step_in_epoch,
                        desc=f"epoch {epoch + 1}/{config.epochs}", disable=not ctx.is_main,
                        leave=False, dynamic_ncols=True)
        tick = time.perf_counter()
        # a batch that fails to load on one rank stops every rank at that step
        for batch in dist_utils.iterate_together(progress, ctx, "loading a batch"):
            lr = schedule(global_step)
            for group in optimizer.param_groups:
                group["lr"] = lr * group.get("lr_scale", 1.0)
            with autocast(device, amp_dtype):
                loss = loss_fn(wrapped, batch)
            loss_value = float(loss.item())
            reason = divergence(loss_value, history)
            if dist_utils.any_rank(reason is not None, ctx):
                raise TrainingDiverged(
                    f"training diverged at epoch {epoch + 1}, step {step_in_epoch + 1} "
                    f"(global step {global_step + 1}): loss {loss_value:.4g}"
                    f" ({reason or 'diverged on another rank'}, rank {ctx.rank}); look at "
                    f"{params_key}.lr ({lr:.3g}), {params_key}.grad_clip ({config.grad_clip}), "
                    f"{params_key}.warmup_epochs ({config.warmup_epochs})")
            scaler.scale(loss).backward()
            if config.grad_clip is not None:
                scaler.unscale_(optimizer)
                nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)
            global_step += 1
            step_in_epoch += 1

            now = time.perf_counter()
            clips_per_s = len(batch) * ctx.world_size / max(now - tick, 1e-9)
            tick = now
            history.steps.append({"step": global_step, "epoch": epoch + 1, "loss": loss_value,
                                  "lr": lr, "clips_per_s": round(clips_per_s, 3)})
            progress.set_postfix(loss=f"{loss_value:.4f}", lr=f"{lr:.3g}")
            if (config.checkpoint_every_steps and global_step % config.checkpoint_every_steps == 0
                    and step_in_epoch < steps_per_epoch):
                save(epoch, step_in_epoch)
        progress.close()

        epoch += 1
        step_in_epoch = 0
        # Mean step loss of the main rank, taken from the history so that an epoch split by
        # an interruption reports the same value as an uninterrupted one.
        losses = [r["loss"] for r in history.steps if r["epoch"] == epoch]
        row = {"epoch": epoch, "loss": float(np.mean(losses)), "lr": schedule(global_step - 1)}
        last = epoch == config.epochs
        validating = (validate is not None and config.val_every
                      and (epoch % config.val_every == 0 or last))
        if config.precise_bn_batches and (validating or last):
            sampler.set_epoch(epoch - 1)
            with autocast(device, amp_dtype):
                used = recompute_bn_statistics(
                    model, itertools.islice(loader, config.precise_bn_batches),
                    lambda batch: loss_fn(model, batch), ctx)
            if used:
                log.info("BatchNorm statistics recomputed over %d batches", used)
        if validating:
            wrapped.eval()
            # scoring runs on the main rank after a gather: its failure must stop the others,
            # which would otherwise wait for it in the next checkpoint's gather
            failure = None
            try:
                row.update(validate(model, epoch))
            except Exception as error:
                failure = error
            with dist_utils.fail_together(ctx, "validation"):
                if failure is not None:
                    raise failure
        history.epochs.append(row)
        log.info("epoch %d: %s", epoch, row)
        save(epoch, 0)
        if ctx.is_main and curves_dir is not None:
            write_curves(curves_dir, history.steps, history.epochs)
    if ctx.is_main and curves_dir is not None:
        write_curves(curves_dir, history.steps, history.epochs)
    if ctx.is_main:
        finish_run(checkpoint_dir)
    return history
