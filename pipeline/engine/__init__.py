"""Training engine: optimiser and schedule, resumable loop, DDP helpers, batched inference.

Import from the modules; this package imports none of them, so that ``config.py`` (TrainConfig)
loads without torch. The rest: ``train.py`` the loop, ``baseline.py`` the baseline stage,
``schedule.py``, ``distributed.py``, ``inference.py``, ``detection.py``, ``checkpoint.py``,
``curves.py``, ``launch.py``.
"""
