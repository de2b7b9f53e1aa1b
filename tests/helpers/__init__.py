"""What the tests share, one module per concept; test modules import shared code only from here
(``tests/`` is on ``sys.path`` under pytest, so ``from helpers.tiny_data import ...``), never
from one another.

- ``video``: mp4 files whose frames paint their own number, and reading the number back.
- ``stores``: a frame store checked frame by frame against a clock; a Zarr array made to name
  a codec this install lacks.
- ``tiny_data``: a small AVA-style dataset with a real frame store (``build_tiny_data``).
- ``tiny_training``: small configs and jobs for training and head runs on the tiny data.
- ``indices``: a dataset of plain indices, for training-loop tests that need no model data.
- ``lfb_bank``: feature-bank boxes and deterministic features.
- ``evaluation_cases``: AVA ground truth and detections, random cases and their files.
- ``plain_reference``: a slow, plain AVA evaluator sharing no code with ``pipeline``.
- ``ava_fixture``, ``kinetics_fixture``, ``custom_fixture``: downloads in miniature.
- ``zoo_layout``: mmaction2 state-dict layouts and random checkpoints of them.
- ``dvc_project``: scratch copies of the project and ``dvc repro`` runs in them.
- ``params_tree``: dotted keys of a params tree and which dvc.yaml entry tracks them.
"""
