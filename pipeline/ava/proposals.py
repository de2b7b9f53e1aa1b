"""The person-proposal pickles used by mmaction2 and PySlowFast <-> a proposals table.

The pickle is a dict ``"{video_id},{timestamp:04d}" -> float ndarray`` of shape ``N x 5``
(``x1, y1, x2, y2, score``, normalised) or ``N x 4`` (boxes without scores). The table has one
row per box: ``video_id, timestamp, x1, y1, x2, y2, score`` (score 1.0 for ``N x 4``).

A pickle can name any importable callable and have it called while loading, so proposal files
(downloaded from elsewhere) are read by an unpickler that resolves only what such a file needs:
numpy arrays, dtypes and scalars (the globals numpy 1.x and 2.x write for them, any pickle
protocol); dicts, lists, tuples, strings and numbers need no global. Anything else is refused
before it can run.
"""

from __future__ import annotations

import pickle
import re
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.boxes import BOX_COLUMNS, KEYFRAME_KEY
from pipeline.errors import InputError
from pipeline.io import write_bytes

_VALUE_COLUMNS = [*BOX_COLUMNS, "score"]   # the N x 5 array's columns, in order
_KEY = re.compile(r"(?P<video_id>[^,]+),(?P<timestamp>\d+)")
_FRACTIONAL_KEY = re.compile(r"(?P<video_id>[^,]+),(?P<timestamp>\d+(?:\.\d*)?)")

_NUMPY_GLOBALS = frozenset(
    (f"numpy.{core}.{module}", name)
    for core in ("core", "_core")          # numpy 1.x and 2.x module paths
    for module, name in (("multiarray", "_reconstruct"), ("multiarray", "scalar"),
                         ("numeric", "_frombuffer"))) | {
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("_codecs", "encode"),                 # bytes in protocol-2 pickles written by Python 3
}


class _ForbiddenGlobal(pickle.UnpicklingError):
    pass


class _ArrayUnpickler(pickle.Unpickler):
    """Resolves only the numpy reconstruction globals; refuses every other global."""

    def find_class(self, module: str, name: str):
        if (module, name) in _NUMPY_GLOBALS:
            return super().find_class(module, name)
        raise _ForbiddenGlobal(f"{module}.{name}")


def read_proposal_pickle(path: str | Path, *, fractional: bool = False) -> pd.DataFrame:
    """Read a proposal pickle; rows keep the pickle's key order and in-frame box order.
    ``fractional``: keys' seconds need not be whole (``"vid,2.500000"``), read as float64."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            data = _ArrayUnpickler(f).load()
    except FileNotFoundError:
        raise InputError("file not found", path=path) from None
    except _ForbiddenGlobal as error:
        raise InputError(f"refused: the pickle asks for {error}, which a proposal file never "
                         f"needs (only numpy arrays, dicts, lists, tuples, strings and numbers "
                         f"are read); nothing of it was run", path=path) from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as error:
        raise InputError(f"not a readable pickle: {error}", path=path) from error
    if not isinstance(data, dict):
        raise InputError(f"expected a dict of arrays, found {type(data).__name__}", path=path)
    video_ids, timestamps, arrays = [], [], []
    for key, value in data.items():
        pattern = _FRACTIONAL_KEY if fractional else _KEY
        match = pattern.fullmatch(key) if isinstance(key, str) else None
        if match is None:
            raise InputError("key is not 'video_id,timestamp'", path=path, key=str(key))
        array = np.asarray(value)
        if array.ndim != 2 or array.shape[1] not in (4, 5) or not np.issubdtype(array.dtype,
                                                                                np.number):
            raise InputError(f"expected a numeric N x 5 or N x 4 array, found shape "
                             f"{array.shape} of {array.dtype}", path=path, key=key)
        array = array.astype(np.float64)
        if array.shape[1] == 4:
            array = np.concatenate([array, np.ones((len(array), 1))], axis=1)
        coords = array[:, :4]
        if not ((coords >= 0) & (coords <= 1)).all():
            bad = coords[~((coords >= 0) & (coords <= 1)).all(axis=1)][0]
            raise InputError(f"box {bad.tolist()} is outside [0, 1] (proposals are "
                             f"normalised xyxy)", path=path, key=key)
        video_ids.append(match["video_id"])
        timestamps.append((float if fractional else int)(match["timestamp"]))
        arrays.append(array)
    counts = np.array([len(a) for a in arrays], dtype=np.int64)
    values = np.concatenate(arrays) if arrays else np.zeros((0, 5))
    return pd.DataFrame({
        "video_id": pd.array(np.repeat(np.array(video_ids, dtype=object), counts), dtype="str"),
        "timestamp": np.repeat(np.array(timestamps, dtype=np.float64 if fractional
                                        else np.int32), counts),
        **{name: values[:, k] for k, name in enumerate(_VALUE_COLUMNS)},
    })


def write_proposal_pickle(path: str | Path, df: pd.DataFrame) -> None:
    """Write the ``N x 5`` float64 pickle, keys in order of first appearance, atomically."""
    groups = df.groupby(KEYFRAME_KEY, sort=False).indices
    values = df[_VALUE_COLUMNS].to_numpy(dtype=np.float64)
    data = {f"{video_id},{int(timestamp):04d}": values[rows]
            for (video_id, timestamp), rows in groups.items()}
    write_bytes(path, pickle.dumps(data, protocol=pickle.HIGHEST_PROTOCOL))
