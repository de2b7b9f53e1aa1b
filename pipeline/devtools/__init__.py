"""Tools for working on the project itself (not used by any stage or by ``stad``):
``python -m pipeline.devtools.stage_deps`` regenerates the code deps of ``dvc.yaml``."""
