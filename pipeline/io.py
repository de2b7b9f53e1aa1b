"""Atomic, deterministic writers for the pipeline's artefacts.

Every output goes to a sibling temporary path (``<name>.partial``) and is renamed into place
when complete, so an interrupted stage never leaves a half-written output behind. The temporary
name is deterministic so that long stages can resume from it, and ``.dvcignore`` hides it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.errors import InputError

if TYPE_CHECKING:   # every command imports this module: pandas/pyarrow/zarr load where used
    import pandas as pd
    import pyarrow as pa
    import zarr

PARTIAL_SUFFIX = ".partial"


def partial_path(path: str | Path) -> Path:
    """The temporary sibling a writer fills before renaming it to ``path``."""
    path = Path(path)
    return path.with_name(path.name + PARTIAL_SUFFIX)


def remove_path(path: str | Path) -> None:
    """Remove a file or a directory tree if it exists."""
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def commit_partial(tmp: str | Path, path: str | Path) -> None:
    """Move a finished temporary output into place, replacing what was there."""
    tmp, path = Path(tmp), Path(path)
    if path.exists() and path.is_dir():
        remove_path(path)
    os.replace(tmp, path)


@contextlib.contextmanager
def atomic_output(path: str | Path, *, resume: bool = False) -> Iterator[Path]:
    """Yield a temporary path to fill; on success it is renamed to ``path``.

    With ``resume=False`` a leftover temporary path from an interrupted run is removed first;
    with ``resume=True`` it is kept so the caller can continue where it stopped. On an exception
    the temporary path is removed unless ``resume`` is set (then it stays for the next run).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = partial_path(path)
    if not resume:
        remove_path(tmp)
    try:
        yield tmp
    except BaseException:
        if not resume:
            remove_path(tmp)
        raise
    commit_partial(tmp, path)


def write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_output(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | Path, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_json(path: str | Path, obj: Any, *, sort_keys: bool = True) -> None:
    """JSON with sorted keys and a trailing newline: stable bytes for DVC metrics.
    ``sort_keys=False`` keeps the caller's (fixed) order, which ``dvc exp show`` keeps for
    its columns."""
    write_text(path, json.dumps(obj, indent=2, sort_keys=sort_keys) + "\n")


def write_parquet(path: str | Path, table: pa.Table | pd.DataFrame, *,
                  schema: pa.Schema | None = None, row_group_size: int = 1 << 20) -> None:
    """Write one Parquet file (zstd) atomically; byte-identical for identical input."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    if isinstance(table, pd.DataFrame):
        table = pa.Table.from_pandas(table, schema=schema, preserve_index=False)
    elif schema is not None:
        table = table.cast(schema)
    with atomic_output(path) as tmp:
        pq.write_table(table, tmp, compression="zstd", row_group_size=row_group_size)


def file_digest(path: str | Path) -> str:
    """SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def content_digest(path: str | Path | None, *, small_file_bytes: int = 1 << 20) -> str | None:
    """A digest of what an input file or folder holds (None for no input, ``missing`` for an
    absent one), to decide whether a checkpoint written for it may be resumed.

    A file is hashed whole. In a folder (a Zarr store) every file's relative path and size are
    hashed, and the bytes of its small files (metadata, indexes): a regenerated store changes
    the digest without reading every shard. Nothing depends on where the input lies, so a
    moved checkout resumes.
    """
    if path is None:
        return None
    path = Path(path)
    if path.is_file():
        return file_digest(path)
    if not path.is_dir():
        return "missing"
    digest = hashlib.sha256()
    for item in sorted(p for p in path.rglob("*") if p.is_file()):
        size = item.stat().st_size
        digest.update(f"{item.relative_to(path).as_posix()}:{size}\n".encode())
        if size <= small_file_bytes:
            digest.update(item.read_bytes())
    return digest.hexdigest()


def open_zarr(store: str | Path, name: str = "", *, array: bool = False
              ) -> zarr.Array | zarr.Group:
    """The Zarr node ``name`` of ``store`` (``""``: the store itself; ``array``: it must be an
    array), for reading. What zarr cannot read (a codec this install lacks, a format or data
    type it does not know, damaged ``zarr.json``, no node there) becomes one InputError naming
    the store and the array, not a traceback: zarr resolves codecs when it opens an array's
    metadata, so every reader of a store opens its arrays here."""
    import zarr

    path = Path(store) / name if name else Path(store)
    try:
        return zarr.open_array(path, mode="r") if array else zarr.open(str(path), mode="r")
    except (ValueError, KeyError, TypeError, FileNotFoundError) as error:  # zarr.errors: ValueError
        what = f"array '{name}'" if name else "the store's Zarr metadata"
        raise InputError(f"cannot read {what} with zarr {zarr.__version__} "
                         f"({type(error).__name__}: {error})", path=store) from error


def zarr_arrays(store: str | Path) -> list[tuple[str, zarr.Array]]:
    """``(name, array)`` of every array in ``store``, at any depth (``("", store)`` when the
    store is an array), each opened with ``open_zarr``, so an unreadable one is named. The
    names come from the folders, not from zarr, which cannot list a group holding such an
    array."""
    import zarr

    node = open_zarr(store)
    if isinstance(node, zarr.Array):
        return [("", node)]
    names = sorted(p.parent.relative_to(store).as_posix()
                   for p in Path(store).rglob("zarr.json") if p.parent != Path(store))
    nodes = [(name, open_zarr(store, name)) for name in names]
    return [(name, n) for name, n in nodes if isinstance(n, zarr.Array)]
