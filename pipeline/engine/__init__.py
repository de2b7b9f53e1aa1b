"""Training and inference machinery shared by the stages that run a model: the resumable loop
(``train.py``), optimiser schedule, checkpoints and run fingerprints (``checkpoint.py``), DDP
helpers (``distributed.py``), batched inference (``inference.py``), the detector's targets,
loss and result rows (``detection.py``), the frozen backbone's cached maps and the head run on
them (``maps.py``), precision, curves.

Import from the modules; this package imports none of them, so that ``config.py`` (TrainConfig)
loads without torch.
"""
