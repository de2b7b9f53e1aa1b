"""Training and test data: keyframe clips from the Zarr frame store, boxes from Parquet.

Import from the modules; this package imports none of them, so that ``config.py`` (DataConfig)
loads without torch. The rest: ``dataset.py`` KeyframeDataset, ``transforms.py``,
``collate.py`` Batch, ``sampler.py``, ``loader.py``.
"""
