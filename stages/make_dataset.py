"""Stage make_dataset: generate the embedded synthetic dataset in AVA's file formats.

    python -m stages.make_dataset --out data/dataset
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from pipeline.dataset import index_ava_layout, write_manifest
from pipeline.params import load_params
from pipeline.synthetic import generate_dataset

from stages import run

PARAMS = ("data",)
log = logging.getLogger("make_dataset")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    params = load_params(groups=PARAMS)
    config = params.data.synthetic
    summary = generate_dataset(args.out, config)
    manifest = index_ava_layout(args.out, source="synthetic", version="2.2",
                                timestamp_start=config.timestamp_start)
    write_manifest(args.out, manifest)
    log.info("generated %s", summary)


if __name__ == "__main__":
    run(main)
