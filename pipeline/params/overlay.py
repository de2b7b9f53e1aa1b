"""Presets: overlay files merged into params.yaml, comments kept."""

from __future__ import annotations

import io
from collections.abc import Mapping
from pathlib import Path

from pipeline.errors import InputError
from pipeline.io import write_text
from pipeline.params.all import load_all
from pipeline.params.schema import read_yaml


def apply_overlay(params_path: str | Path, overlay_path: str | Path) -> list[str]:
    """Merge an overlay YAML (e.g. ``presets/smoke.yaml``) into the params file in place.

    Every overlay key must already exist in the params file (as with ``dvc exp run -S``), and
    the merged file must validate. Returns the dotted keys that were set.
    """
    from ruamel.yaml import YAML

    params_path, overlay_path = Path(params_path), Path(overlay_path)
    read_yaml(params_path)   # both mappings of valid YAML without a key given twice, or a
    read_yaml(overlay_path)  # clear error (ruamel's own would be a traceback)
    rt = YAML()
    rt.preserve_quotes = True
    rt.representer.add_representer(  # keep `null` spelled out (ruamel writes nothing)
        type(None), lambda rep, _: rep.represent_scalar("tag:yaml.org,2002:null", "null"))
    doc = rt.load(params_path.read_text())
    # Round-trip scalars keep the overlay's own spelling: a plain float would be re-written as
    # e.g. ``1e-05``, which YAML 1.1 (PyYAML, DVC) reads back as a string.
    overlay = rt.load(overlay_path.read_text()) or {}
    changed: list[str] = []

    def merge(target, source, prefix):
        for name, value in source.items():
            key = f"{prefix}.{name}" if prefix else name
            if name not in target:
                raise InputError("overlay key does not exist in the params file",
                                 path=overlay_path, key=key)
            if isinstance(value, Mapping):
                merge(target[name], value, key)
            else:
                target[name] = value
                changed.append(key)

    merge(doc, overlay, "")
    buffer = io.StringIO()
    rt.dump(doc, buffer)
    text = buffer.getvalue()
    tmp = params_path.with_name(params_path.name + ".check")
    tmp.write_text(text)
    try:
        load_all(tmp)
    finally:
        tmp.unlink()
    write_text(params_path, text)
    return changed
