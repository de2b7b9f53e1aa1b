"""``detect_video``: one video through one checkpoint, as the package doc describes; each step
is its own module's (person boxes, keyframes, bank, outputs)."""

from __future__ import annotations

from pathlib import Path

import torch

from pipeline.ava.results import write_results_csv, write_results_parquet
from pipeline.detect.bank import bank_model, bank_recipe_of, bank_seconds, build_bank
from pipeline.detect.config import DEFAULT_SHORT_SIDE, DetectConfig
from pipeline.detect.keyframes import VideoDetection
from pipeline.detect.outputs import (DetectResult, captions, label_classes,
                                     write_annotated_video)
from pipeline.detect.persons import DetectedBoxes, PersonDetector, ProposalBoxes
from pipeline.devices import resolve_device
from pipeline.engine.detection import detections_table
from pipeline.errors import InputError
from pipeline.evaluation.protocols import MIN_ACTION_SCORE
from pipeline.frames.spec import decoded_size
from pipeline.frames.video import open_video
from pipeline.lfb.window import BankWindow
from pipeline.models.checkpoint import build_detector_from_checkpoint, read_stad_checkpoint


def detect_video(video: str | Path, out_dir: str | Path, config: DetectConfig) -> DetectResult:
    """Detect actions in ``video`` with ``config``'s checkpoint, writing into ``out_dir``; the
    video and the folder are apart from the config so that one config serves many videos."""
    try:
        torch_device = resolve_device(config.device, key="--device")
    except RuntimeError as error:
        raise InputError(str(error), key="--device") from None
    video, checkpoint, out_dir = Path(video), Path(config.checkpoint), Path(out_dir)
    stad = read_stad_checkpoint(checkpoint)
    convention = config.convention or stad.frame_convention or "pyslowfast"
    timeline_fps = config.timeline_fps
    if not config.native_timeline:
        timeline_fps = timeline_fps or stad.timeline_fps
    short_side = config.short_side or stad.test_short_side or DEFAULT_SHORT_SIDE
    model = build_detector_from_checkpoint(checkpoint, stad)
    model_config = model.config
    recipe = baseline = None
    if model_config.uses_bank:
        recipe = bank_recipe_of(stad, checkpoint, config.bank_baseline, short_side,
                                config.bank_window)
        baseline = bank_model(recipe, model).to(torch_device)
    model.eval().to(torch_device)
    action_ids, names = label_classes(config.label_map, model_config.num_classes, stad.labels)
    columns = torch.tensor(action_ids, dtype=torch.long, device=torch_device)

    # the frame store's decoder and decode-time resize, on its timeline
    source = open_video(video.stem, video,
                        lambda width, height: decoded_size(width, height, stad.frame_short_side),
                        timeline_fps)
    run = VideoDetection(source, model_config, timestamp_start=config.timestamp_start,
                         convention=convention, batch_size=config.batch_size,
                         device=torch_device, progress=config.progress)
    last = run.last_second()
    if config.start > last:
        raise InputError(f"the video's last keyframe is at second {last}", key="--start")
    end = last if config.end is None else min(config.end, last)
    scored = list(range(config.timestamp_start + config.start,
                        config.timestamp_start + end + 1, config.period))
    seconds = scored if recipe is None else bank_seconds(scored, recipe,
                                                         config.timestamp_start, last)

    if config.proposals is not None:
        persons = ProposalBoxes(config.proposals, source.video_id, sorted(set(scored + seconds)),
                                config.person_threshold, recipe)
    else:
        detector = PersonDetector(config.detector_weights, config.detector_arch,
                                  config.person_threshold, torch_device)
        persons = DetectedBoxes(detector, model_config.clip_len // 2, recipe)

    bank = bank_path = window = None
    if recipe is not None:
        bank_path = out_dir / "bank"
        bank = build_bank(run, bank_path, baseline, recipe, persons.bank_seconds(seconds),
                          persons.bank)
        window = BankWindow(recipe.window_seconds, recipe.max_per_second)
        del baseline

    predictions = run.score(model, scored, persons.scored, short_side, columns, bank, window)

    out_dir.mkdir(parents=True, exist_ok=True)
    table = detections_table(predictions, action_ids, min_score=MIN_ACTION_SCORE)
    result = DetectResult(csv=out_dir / "detections.csv", parquet=out_dir / "detections.parquet",
                          video=out_dir / "annotated.mp4" if config.write_video else None,
                          keyframes=len(scored), rows=len(table), bank=bank_path)
    write_results_csv(result.csv, table)
    write_results_parquet(result.parquet, table)
    if config.write_video:
        drawn = {p["timestamp"]: captions(p, action_ids, names, config.top_k,
                                          config.score_threshold)
                 for p in predictions}
        # keyframe k is drawn from its frame for one period
        starts = run.source_frame_of(scored + [scored[-1] + config.period])
        write_annotated_video(result.video, video, source.video_id, starts,
                              [drawn.get(t, []) for t in scored] + [[]],
                              progress=config.progress)
    return result
