"""Training and inference machinery shared by the stages that run a model: the trainer every
training stage hands its model, data, loss and val predictor to (``trainer.py``), the
resumable loop under it (``train.py``), the optimiser's parameter groups (``optimizer.py``)
and schedule, checkpoints and run fingerprints (``checkpoint.py``), DDP
helpers (``distributed.py``), batched inference (``inference.py``), the detector's targets,
loss and result rows (``detection.py``), the frozen backbone's cached maps and the head run on
them (``maps.py``), precision, curves.

Import from the modules; this package imports none of them, so that ``config.py`` (TrainConfig)
loads without torch.
"""
