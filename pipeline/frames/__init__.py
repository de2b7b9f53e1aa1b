"""The frame store: every frame a keyframe's clip can reach, decoded once from each video
(``video.py``, ``extract.py``) into a Zarr store in the codec ``frames.codec`` names
(``codecs.py``); what is stored and how (``spec.py``) and the reader every stage, ``stad`` and
a user go through (``store.py``).

Import from the modules; this package imports none of them, so that ``spec.py`` (read by the
params code) loads without zarr, pandas or the decoder.
"""
