"""Stage ``make_dataset``: generate the embedded synthetic dataset in AVA's file formats, or index
and validate an AVA download, a folder of your own videos, or AVA-Kinetics (``data.source``).
Imports no torch: it runs where no model will.
"""

from __future__ import annotations

import logging
from pathlib import Path

from pipeline.io import atomic_output, write_json
from pipeline.params.data import DataParams
from pipeline.params.schema import Params
from pipeline.sources.ava_download import index_download
from pipeline.sources.ava_kinetics import index_ava_kinetics
from pipeline.sources.custom import index_custom
from pipeline.sources.manifest import index_ava_layout, write_manifest
from pipeline.sources.synthetic import generate_dataset

log = logging.getLogger(__name__)

# The params keys whose values shape this stage's outputs (see pretrain_baseline.PARAMS).
# The params groups this stage reads, with their schemas (all of PARAMS's groups).
GROUPS = {"data": DataParams}
PARAMS = ("data",)
PATHS = ("out", "metrics")


def run(params: Params, *, out: Path, metrics: Path) -> None:
    """The stage: the dataset folder ``out`` with its manifest, a summary in ``metrics``."""
    data = params.data
    if data.source == "synthetic":
        config = data.synthetic
        summary = generate_dataset(out, config)
        manifest = index_ava_layout(out, source="synthetic", version="2.2",
                                    timestamp_start=config.timestamp_start)
        write_manifest(out, manifest)
        summary_json = {"source": "synthetic", **summary}
        log.info("generated %s", summary)
    elif data.source == "custom":
        with atomic_output(out) as tmp:
            manifest, report = index_custom(data.custom.root, tmp,
                                            skip_missing_videos=data.custom.skip_missing_videos)
            write_manifest(tmp, manifest)
        summary_json = {"source": "custom", **report.to_json()}
        _warn_skipped(report.skipped_videos)
    elif data.source == "ava_kinetics":
        ava, kinetics = data.ava, data.kinetics
        with atomic_output(out) as tmp:
            manifest, report = index_ava_kinetics(
                ava.root, kinetics.root, tmp, video_start=ava.video_start,
                skip_missing_videos=ava.skip_missing_videos,
                skip_missing_clips=kinetics.skip_missing_clips, use_val=kinetics.use_val)
            write_manifest(tmp, manifest)
        summary_json = {"source": "ava_kinetics", **report}
        _warn_skipped(report["skipped_videos"])
        _warn_skipped(report["kinetics"]["skipped_keyframes"])
    else:
        ava = data.ava
        with atomic_output(out) as tmp:
            manifest, report = index_download(ava.root, tmp, version=ava.version,
                                              video_start=ava.video_start,
                                              skip_missing_videos=ava.skip_missing_videos)
            write_manifest(tmp, manifest)
        summary_json = {"source": "ava", "version": ava.version, **report.to_json()}
        _warn_skipped(report.skipped_videos)
    write_json(metrics, summary_json)


def _warn_skipped(skipped: dict[str, str]) -> None:
    if skipped:
        log.warning("left out %d videos: %s", len(skipped), ", ".join(sorted(skipped)))
