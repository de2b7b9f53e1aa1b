"""Reading params files and building a group's typed record from them.

Errors name the file and the dotted key: an unknown key, a key given twice (with both lines),
a missing key, a value of the wrong type, a number that is not finite (every float key), or an
impossible value (checked by the dataclasses' ``__post_init__``).
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml

from pipeline.errors import InputError

PARAMS_FILE = "params.yaml"

GROUP_NAMES = ("data", "frames", "proposals", "baseline", "lfb", "model", "eval")
"""Every top-level group of params.yaml, in file order (their classes: ``pipeline.params.all``)."""

Params = types.SimpleNamespace
"""What ``load_params`` returns: one attribute per loaded group (``params.baseline``, ...),
each its typed record; a task's ``run`` takes it."""


def load_params(schemas: Mapping[str, type], path: str | Path = PARAMS_FILE) -> Params:
    """Load and validate the groups ``schemas`` names (group -> its dataclass) from a params
    file; a group the file lacks, or a group name the project does not know, is an error."""
    path = Path(path)
    raw = read_yaml(path)
    unknown = sorted(set(raw) - set(GROUP_NAMES))
    if unknown:
        raise InputError(f"unknown params group; known groups: {', '.join(sorted(GROUP_NAMES))}",
                         path=path, key=unknown[0])
    loaded = {}
    for group, schema in schemas.items():
        if group not in raw:
            raise InputError("missing params group", path=path, key=group)
        loaded[group] = build(schema, raw[group], key=group, path=path)
    return Params(**loaded)


def positive(obj, *names: str) -> None:
    """``obj.<name> > 0`` for each name, else a ValueError naming the field."""
    for name in names:
        value = getattr(obj, name)
        if value <= 0:
            raise ValueError(f"{name} must be > 0, got {value}")


class UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a mapping that names a key twice (plain YAML keeps the
    last one silently, so an edit above a forgotten copy would do nothing). The error names
    the dotted key and both lines."""

    def get_single_data(self):
        node = self.get_single_node()
        if node is None:
            return None
        self._check_keys(node, "")
        return self.construct_document(node)

    def _check_keys(self, node: yaml.Node, prefix: str) -> None:
        if isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                self._check_keys(item, f"{prefix}[{i}]")
        if not isinstance(node, yaml.MappingNode):
            return
        lines: dict[Any, int] = {}
        for key_node, value_node in node.value:
            name = self.construct_object(key_node, deep=True)
            dotted = f"{prefix}.{name}" if prefix else str(name)
            line = key_node.start_mark.line + 1
            if name in lines:
                raise DuplicateKey(dotted, lines[name], line)
            lines[name] = line
            self._check_keys(value_node, dotted)


class DuplicateKey(Exception):
    """A key given twice in one mapping (``UniqueKeyLoader``)."""

    def __init__(self, key: str, first: int, second: int):
        super().__init__(f"given twice, at lines {first} and {second}")
        self.key = key


def read_yaml(path: Path) -> dict:
    """A params or overlay file as plain data (``UniqueKeyLoader``); a clear error otherwise."""
    if not path.exists():
        raise InputError("params file not found", path=path)
    try:
        raw = yaml.load(path.read_text(), Loader=UniqueKeyLoader)
    except DuplicateKey as exc:
        raise InputError(str(exc), path=path, key=exc.key) from exc
    except yaml.YAMLError as exc:
        raise InputError(f"not valid YAML: {exc}", path=path) from exc
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise InputError("expected a mapping of params groups", path=path)
    return raw


def build(cls: type, data: Any, *, key: str, path: Path | None = None):
    """Build dataclass ``cls`` from a mapping, checking keys and types recursively."""
    if not isinstance(data, Mapping):
        raise InputError(f"expected a mapping, got {_describe(data)}", path=path, key=key)
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for name in data:
        if name not in fields:
            raise InputError(f"unknown key; valid keys here: {', '.join(fields)}",
                             path=path, key=f"{key}.{name}")
    kwargs = {}
    for name in fields:
        if name not in data:
            raise InputError("missing key (every key must be set in the params file)",
                             path=path, key=f"{key}.{name}")
        kwargs[name] = convert(hints[name], data[name], key=f"{key}.{name}", path=path)
    try:
        return cls(**kwargs)
    except InputError as exc:  # library configs name their own key, with or without the group
        inner = exc.key if exc.key is None or "." in exc.key else f"{key}.{exc.key}"
        raise InputError(exc.reason, path=path, key=inner or key) from exc
    except (ValueError, TypeError) as exc:
        raise InputError(str(exc), path=path, key=key) from exc


def convert(tp: Any, value: Any, *, key: str, path: Path | None):
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        return build(tp, value, key=key, path=path)
    if origin is Literal:
        if value not in args:
            raise InputError(f"must be one of {', '.join(map(repr, args))}, got {value!r}",
                             path=path, key=key)
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for option in args:
            if option is type(None):
                continue
            try:
                return convert(option, value, key=key, path=path)
            except InputError as exc:
                errors.append(str(exc))
        raise InputError(f"no allowed type matches {_describe(value)}: " + "; ".join(errors),
                         path=path, key=key)
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise InputError(f"expected a list, got {_describe(value)}", path=path, key=key)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise InputError(f"expected {len(args)} items, got {len(value)}",
                                 path=path, key=key)
            items = [convert(t, v, key=f"{key}[{i}]", path=path)
                     for i, (t, v) in enumerate(zip(args, value))]
        else:
            item_type = args[0] if args else Any
            items = [convert(item_type, v, key=f"{key}[{i}]", path=path)
                     for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, Mapping):
            raise InputError(f"expected a mapping, got {_describe(value)}", path=path, key=key)
        value_type = args[1] if args else Any
        return {str(k): convert(value_type, v, key=f"{key}.{k}", path=path)
                for k, v in value.items()}
    if tp is Any:
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise InputError(f"expected true or false, got {_describe(value)}", path=path, key=key)
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise InputError(f"expected an integer, got {_describe(value)}", path=path, key=key)
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InputError(f"expected a number, got {_describe(value)}", path=path, key=key)
        if not math.isfinite(value):    # NaN passes every comparison a range check makes
            raise InputError(f"expected a finite number, got {value}", path=path, key=key)
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise InputError(f"expected a string, got {_describe(value)}", path=path, key=key)
        return value
    raise TypeError(f"params type {tp!r} of key {key} is not supported")


def _describe(value: Any) -> str:
    return f"{type(value).__name__} {value!r}"
