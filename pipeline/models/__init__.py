"""Detection models compatible with mmaction2's AVA checkpoints (SlowOnly, SlowFast, ACRN, LFB,
VideoMAE ViT).

Import from the modules; this package imports none of them, so that ``config.py`` (ModelConfig)
and ``presets.py`` (PRESETS, get_preset) load without torch and validating params.yaml stays
fast. The rest: ``backbones.py`` (the backbone table and the interface every backbone
implements), ``resnet3d.py`` and ``vit.py`` backbones, ``roi_head.py``, ``acrn.py``, ``fbo.py``
(LFB operators), ``detector.py`` Detector, ``assign.py`` targets, ``losses.py``,
``checkpoint.py`` (mmaction2 and stad-v1 files), ``command.py`` (``stad checkpoint``).
"""
