"""One module per DVC stage: ``PARAMS`` (the params keys that shape its outputs, as dvc.yaml
declares them), ``PATHS`` (its command-line paths) and ``run(params, **paths)``, the stage's
whole work; ``stages/<stage>.py`` only parses the paths and calls it. Each module also holds
the stage's work on explicit files (``train_baseline``, ``infer_lfb``, ``train_head``,
``evaluate_head``) for tests and other callers; everything a second caller needs lives below,
in the packages the tasks compose.
"""
