"""Typed params: params.yaml loaded into frozen dataclasses and validated once, at load.

params.yaml is the single source of configuration. Each top-level group (``data``, ``frames``,
``proposals``, ...) maps onto one dataclass in its own module here, and every key must be
present in the file: no hidden defaults in code, so what DVC tracks is exactly what a stage
runs with.

- ``schema.py``: reading the file and building a group's dataclass from it, checking keys and
  types (errors name the file and the dotted key); ``load_params`` loads the groups a caller
  names, with their classes.
- ``data.py``, ``frames.py``, ``proposals.py``, ``baseline.py``, ``lfb.py``, ``model.py``,
  ``evaluation.py``: one group each.
- ``all.py``: every group, the checks between groups and the runtime-only keys
  (``stad params check``); ``overlay.py``: presets merged into params.yaml.

A stage imports only the group modules it reads (``pipeline.tasks.<stage>.GROUPS``), so its
code deps in dvc.yaml, generated from its imports, hold no other group's code: editing the
model code never marks the data stages changed. This package imports none of its modules.
"""
