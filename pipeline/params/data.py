"""The ``data`` group: which dataset the DAG runs on (``make_dataset``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pipeline.errors import InputError
from pipeline.sources.synthetic import SyntheticConfig


@dataclass(frozen=True)
class AvaSourceParams:
    """A real AVA download (``data.source: ava``), laid out as ``pipeline.sources.manifest`` reads it."""

    root: str                  # folder with annotations/ and videos/
    version: Literal["2.1", "2.2"]
    video_start: int           # movie second at each video's first frame (900: cut clips, 0: movies)
    skip_missing_videos: bool  # True: leave out missing or truncated videos, counted in metrics


@dataclass(frozen=True)
class CustomSourceParams:
    """A folder of your own videos and AVA-format CSVs (``data.source: custom``), laid out as
    ``pipeline.sources.custom`` reads it."""

    root: str                  # folder with videos/, annotations/ (and optionally proposals/)
    skip_missing_videos: bool  # True: leave out missing, unreadable or short videos, listed in metrics


@dataclass(frozen=True)
class KineticsSourceParams:
    """The Kinetics part of AVA-Kinetics (``data.source: ava_kinetics``; the AVA part is
    ``data.ava``), laid out as ``pipeline.sources.ava_kinetics`` reads it."""

    root: str                  # folder with annotations/kinetics_{train,val}_v1.0.csv and videos/
    skip_missing_clips: bool   # True: leave out missing or corrupt clips, listed in metrics
    use_val: bool              # True: val is AVA-Kinetics val (+ kinetics_val_v1.0.csv); False: AVA v2.2 val


@dataclass(frozen=True)
class DataParams:
    """Which dataset the DAG runs on (``make_dataset``)."""

    source: Literal["synthetic", "ava", "custom", "ava_kinetics"]
    synthetic: SyntheticConfig
    ava: AvaSourceParams
    custom: CustomSourceParams
    kinetics: KineticsSourceParams

    def __post_init__(self):
        if self.source in ("ava", "ava_kinetics") and not self.ava.root:
            raise InputError(f"data.source is '{self.source}' but data.ava.root is empty: set "
                             "it to the folder holding annotations/ and videos/",
                             key="data.ava.root")
        if self.source == "custom" and not self.custom.root:
            raise InputError("data.source is 'custom' but data.custom.root is empty: set it to "
                             "the folder holding videos/ and annotations/",
                             key="data.custom.root")
        if self.source == "ava_kinetics":
            if not self.kinetics.root:
                raise InputError("data.source is 'ava_kinetics' but data.kinetics.root is "
                                 "empty: set it to the folder holding annotations/ and videos/ "
                                 "of the Kinetics part", key="data.kinetics.root")
            if self.ava.version != "2.2":
                raise InputError("AVA-Kinetics is AVA v2.2 plus Kinetics: set data.ava.version: "
                                 f'"2.2" (got {self.ava.version!r})', key="data.ava.version")
