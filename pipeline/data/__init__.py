"""What goes into a model: a run's dataset files (``inputs.py``), keyframe clips from the Zarr
frame store with their boxes (``dataset.py`` KeyframeDataset), ``transforms.py``,
``collate.py`` (Batch, boxes to RoIs), ``sampler.py``, ``loader.py``.

Import from the modules; this package imports none of them, so that ``config.py`` (DataConfig)
loads without torch.
"""
