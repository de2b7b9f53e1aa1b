"""Keyframe clips decoded from video into a sharded Zarr store, and the reader for it."""

from pipeline.frames.extract import extract_frames
from pipeline.frames.spec import FrameSpec
from pipeline.frames.store import INDEX_SCHEMA, FrameStore

__all__ = ["FrameSpec", "FrameStore", "INDEX_SCHEMA", "extract_frames"]
