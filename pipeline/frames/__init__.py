"""Keyframe clips decoded from video into a sharded Zarr store (``extract.py``, ``video.py``),
its layout and settings (``spec.py``) and the reader for it (``store.py``).

Import from the modules; this package imports none of them, so that ``spec.py`` (read by the
params code) loads without zarr, pandas or the decoder.
"""
