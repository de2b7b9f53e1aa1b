"""AVA label maps (protobuf text) <-> :class:`LabelMap`.

Two forms exist in the wild and both are read:

- ``item { name: "..." id: N }``: the ActivityNet lists of the 60 evaluated classes;
- ``label { name: "..." label_id: N label_type: PERSON_MOVEMENT }``: the full 80-class lists.

A class's group (the reports' group means) is its ``label_type``; a label map without one
has no groups, and reports show the overall mAP only. AVA's id ranges (1-14 movement, 15-63
object, 64-80 interaction) name the groups of AVA's own classes only: an AVA source writes
them into its dataset's label map, ``stad eval --ava-groups`` applies them
(``LabelMap.with_ava_groups``); any other id 1-14 is no movement.

The parser tokenizes, so indentation, line breaks and ``#`` comments do not matter. (The
reference parsers match lines that start with exactly two spaces and silently return an empty
list otherwise, which then evaluates nothing.) Every malformed item, unknown field or duplicate
id raises :class:`InputError` with the line number.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.errors import InputError
from pipeline.io import write_text

GROUPS = ("movement", "object", "interaction")
# label_type values of the full AVA lists and the group names this project uses for them.
_LABEL_TYPE_TO_GROUP = {
    "PERSON_MOVEMENT": "movement",
    "OBJECT_MANIPULATION": "object",
    "PERSON_INTERACTION": "interaction",
}
_GROUP_TO_LABEL_TYPE = {group: label_type for label_type, group in _LABEL_TYPE_TO_GROUP.items()}


AVA_MAX_ID = 80


def ava_group_of(action_id: int) -> str:
    """AVA's group of one of AVA's 80 actions, by id range."""
    if not 1 <= action_id <= AVA_MAX_ID:
        raise ValueError(f"id {action_id} is not one of AVA's actions 1..{AVA_MAX_ID}")
    if action_id <= 14:
        return "movement"
    if action_id <= 63:
        return "object"
    return "interaction"


@dataclass(frozen=True)
class LabelMap:
    """Class ids in file order; the position of an id is its contiguous class index.
    ``groups``: the group of each class that has one (its ``label_type``); may be empty."""

    ids: tuple[int, ...]
    names: dict[int, str]
    groups: dict[int, str] = field(default_factory=dict)

    def __post_init__(self):
        if len(set(self.ids)) != len(self.ids):
            raise ValueError(f"duplicate class ids in {self.ids}")
        missing = [i for i in self.ids if i not in self.names]
        if missing:
            raise ValueError(f"class ids {missing} lack a name")
        foreign = sorted(set(self.groups) - set(self.ids))
        if foreign:
            raise ValueError(f"groups name ids {foreign} that are not in the label map")
        object.__setattr__(self, "_index", {class_id: k for k, class_id in enumerate(self.ids)})

    def with_ava_groups(self) -> LabelMap:
        """This map of AVA classes with AVA's group (by id range) for each class that has no
        ``label_type``; ValueError for an id outside AVA's 1..80."""
        return LabelMap(ids=self.ids, names=self.names,
                        groups={i: self.groups.get(i) or ava_group_of(i) for i in self.ids})

    @property
    def num_classes(self) -> int:
        return len(self.ids)

    def index_of(self, class_id: int) -> int:
        """Contiguous index (0..num_classes-1) of an AVA class id."""
        try:
            return self._index[class_id]
        except KeyError:
            raise KeyError(f"class id {class_id} is not in the label map") from None

    def group_ids(self, group: str) -> tuple[int, ...]:
        """Ids of one group (e.g. ``"movement"``), in label-map order."""
        return tuple(i for i in self.ids if self.groups.get(i) == group)

    def group_names(self) -> tuple[str, ...]:
        """The groups present (none without ``label_type``), AVA's three first, then others
        in order of appearance."""
        present = list(dict.fromkeys(self.groups[i] for i in self.ids if i in self.groups))
        return tuple(sorted(present, key=lambda g: (GROUPS.index(g) if g in GROUPS else 3,
                                                    present.index(g))))


_TOKEN = re.compile(r'\s+|#[^\n]*|(?P<string>"(?:[^"\\\n]|\\.)*")|(?P<punct>[{}:])'
                    r'|(?P<word>[A-Za-z_][A-Za-z0-9_]*|[-+]?\d+)')
_ITEM_FIELDS = {"item": {"name", "id", "display_name"},
                "label": {"name", "label_id", "label_type", "display_name"}}


def _tokens(text: str, path: Path) -> list[tuple[str, str, int]]:
    """(kind, value, line) tokens; an unexpected character is an error naming its line."""
    tokens, pos, line = [], 0, 1
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            raise InputError(f"unexpected character {text[pos]!r} in label map", path=path,
                             line=line)
        kind = match.lastgroup
        if kind is not None:
            value = match.group(kind)
            tokens.append((kind, re.sub(r'\\(.)', r'\1', value[1:-1]) if kind == "string" else value,
                           line))
        line += match.group(0).count("\n")
        pos = match.end()
    return tokens


def read_label_map(path: str | Path) -> LabelMap:
    """Parse an AVA ``.pbtxt`` label map (either form, any whitespace)."""
    path = Path(path)
    tokens = _tokens(path.read_text(encoding="utf-8"), path)
    ids: list[int] = []
    names: dict[int, str] = {}
    groups: dict[int, str] = {}
    seen_line: dict[int, int] = {}
    pos = 0

    def expect(kind: str, value: str | None = None) -> tuple[str, str, int]:
        nonlocal pos
        if pos >= len(tokens):
            last_line = tokens[-1][2] if tokens else 1
            raise InputError(f"label map ends inside an item (expected {value or kind})",
                             path=path, line=last_line)
        token = tokens[pos]
        if token[0] != kind or (value is not None and token[1] != value):
            raise InputError(f"expected {value or kind!s}, found {token[1]!r}", path=path,
                             line=token[2])
        pos += 1
        return token

    while pos < len(tokens):
        _, block, block_line = expect("word")
        if block not in _ITEM_FIELDS:
            raise InputError(f"expected 'item' or 'label', found {block!r}", path=path,
                             line=block_line)
        expect("punct", "{")
        fields: dict[str, tuple[str, str, int]] = {}
        while pos < len(tokens) and tokens[pos][1] != "}":
            _, key, key_line = expect("word")
            if key not in _ITEM_FIELDS[block]:
                raise InputError(f"unknown field {key!r} in {block} (expected one of "
                                 f"{', '.join(sorted(_ITEM_FIELDS[block]))})", path=path,
                                 line=key_line)
            if key in fields:
                raise InputError(f"field {key!r} given twice in one {block}", path=path,
                                 line=key_line)
            expect("punct", ":")
            if pos >= len(tokens):
                raise InputError(f"field {key!r} has no value", path=path, line=key_line)
            fields[key] = tokens[pos]
            pos += 1
        expect("punct", "}")
        id_key = "id" if block == "item" else "label_id"
        for required in ("name", id_key):
            if required not in fields:
                raise InputError(f"{block} has no {required!r}", path=path, line=block_line)
        kind, name, name_line = fields["name"]
        if kind != "string":
            raise InputError(f"name must be a quoted string, found {name!r}", path=path,
                             line=name_line)
        _, raw_id, id_line = fields[id_key]
        if not re.fullmatch(r"[-+]?\d+", raw_id) or int(raw_id) < 1:
            raise InputError(f"{id_key} must be a positive integer, found {raw_id!r}",
                             path=path, line=id_line)
        class_id = int(raw_id)
        if class_id in seen_line:
            raise InputError(f"duplicate class id {class_id} (first on line "
                             f"{seen_line[class_id]})", path=path, line=id_line)
        seen_line[class_id] = id_line
        ids.append(class_id)
        names[class_id] = name
        if "label_type" in fields:
            _, label_type, _ = fields["label_type"]
            groups[class_id] = _LABEL_TYPE_TO_GROUP.get(label_type, label_type.lower())
    if not ids:
        raise InputError("label map has no items", path=path)
    return LabelMap(ids=tuple(ids), names=names, groups=groups)


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_label_map(path: str | Path, label_map: LabelMap) -> None:
    """Write the ``item`` form when no class has a group, else the ``label`` form with each
    group as its ``label_type``."""
    blocks = []
    for class_id in label_map.ids:
        name = _quote(label_map.names[class_id])
        group = label_map.groups.get(class_id)
        if not label_map.groups:
            blocks.append(f"item {{\n  name: {name}\n  id: {class_id}\n}}\n")
        elif group is None:
            blocks.append(f"label {{\n  name: {name}\n  label_id: {class_id}\n}}\n")
        else:
            label_type = _GROUP_TO_LABEL_TYPE.get(group, group.upper())
            blocks.append(f"label {{\n  name: {name}\n  label_id: {class_id}\n"
                          f"  label_type: {label_type}\n}}\n")
    write_text(path, "".join(blocks))
