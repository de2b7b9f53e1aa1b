"""Stage make_dataset: generate the embedded synthetic dataset in AVA's file formats, or index
and validate an AVA download, a folder of your own videos, or AVA-Kinetics (``data.source``).

    python -m stages.make_dataset --out data/dataset --metrics metrics/dataset.json
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from pipeline.ava.custom import index_custom
from pipeline.ava.download import index_download
from pipeline.ava.kinetics import index_ava_kinetics
from pipeline.dataset import index_ava_layout, write_manifest
from pipeline.io import atomic_output, write_json
from pipeline.params import load_params
from pipeline.synthetic import generate_dataset

from stages import run

# The params keys whose values shape this stage's outputs, as dvc.yaml declares them
# (tests/test_params.py checks both); runtime-only keys (pipeline.params.RUNTIME_KEYS)
# are read from the same groups but tracked by no stage.
PARAMS = (
    "data",
)
log = logging.getLogger("make_dataset")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--metrics", type=Path, required=True)
    args = parser.parse_args(argv)
    data = load_params(groups=PARAMS).data
    if data.source == "synthetic":
        config = data.synthetic
        summary = generate_dataset(args.out, config)
        manifest = index_ava_layout(args.out, source="synthetic", version="2.2",
                                    timestamp_start=config.timestamp_start)
        write_manifest(args.out, manifest)
        metrics = {"source": "synthetic", **summary}
        log.info("generated %s", summary)
    elif data.source == "custom":
        with atomic_output(args.out) as tmp:
            manifest, report = index_custom(data.custom.root, tmp,
                                            skip_missing_videos=data.custom.skip_missing_videos)
            write_manifest(tmp, manifest)
        metrics = {"source": "custom", **report.to_json()}
        _warn_skipped(report.skipped_videos)
    elif data.source == "ava_kinetics":
        ava, kinetics = data.ava, data.kinetics
        with atomic_output(args.out) as tmp:
            manifest, report = index_ava_kinetics(
                ava.root, kinetics.root, tmp, video_start=ava.video_start,
                skip_missing_videos=ava.skip_missing_videos,
                skip_missing_clips=kinetics.skip_missing_clips, use_val=kinetics.use_val)
            write_manifest(tmp, manifest)
        metrics = {"source": "ava_kinetics", **report}
        _warn_skipped(report["skipped_videos"])
        _warn_skipped(report["kinetics"]["skipped_keyframes"])
    else:
        ava = data.ava
        with atomic_output(args.out) as tmp:
            manifest, report = index_download(ava.root, tmp, version=ava.version,
                                              video_start=ava.video_start,
                                              skip_missing_videos=ava.skip_missing_videos)
            write_manifest(tmp, manifest)
        metrics = {"source": "ava", "version": ava.version, **report.to_json()}
        _warn_skipped(report.skipped_videos)
    write_json(args.metrics, metrics)


def _warn_skipped(skipped: dict[str, str]) -> None:
    if skipped:
        log.warning("left out %d videos: %s", len(skipped), ", ".join(sorted(skipped)))


if __name__ == "__main__":
    run(main)
