"""Where a dataset comes from, ending in one manifest (``manifest.py``: ``dataset.json``) that
every later stage reads: the embedded ``synthetic`` dataset, an AVA download
(``ava_download.py``), AVA-Kinetics (``ava_kinetics.py``) or your own videos (``custom.py``).
The file formats themselves are ``pipeline.ava``'s.
"""
