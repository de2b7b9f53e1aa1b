"""Keys of a params tree: its dotted leaf keys, and whether a dvc.yaml ``params`` entry tracks
one (the params tests)."""


def leaf_keys(tree: dict, prefix: str = "") -> list[str]:
    """Dotted keys of a params mapping's leaves (a list value is one leaf)."""
    keys = []
    for name, value in tree.items():
        key = f"{prefix}{name}"
        keys.extend(leaf_keys(value, f"{key}.") if isinstance(value, dict) and value else [key])
    return keys


def covered(entry: str, key: str) -> bool:
    """Whether a dvc.yaml params entry (a key or a sub-tree) tracks leaf ``key``."""
    return key == entry or key.startswith(f"{entry}.")
