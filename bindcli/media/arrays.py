"""Numeric arrays from `.npy` / `.npz` files (depth maps, IMU recordings), without pickles."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bindcli.errors import InputError
from bindcli.media.source import decoding, existing_file


def read_array(source: str | Path, preferred_key: str) -> np.ndarray:
    """The array in a `.npy`, or in a `.npz` the one named `preferred_key` or its only one.

    Object arrays are refused (`allow_pickle=False`): loading a pickle runs code.
    """
    path = existing_file(source)
    with decoding(source, "array"):
        loaded = np.load(path, allow_pickle=False)
        if isinstance(loaded, np.ndarray):
            array = loaded
        else:
            with loaded:
                names = list(loaded.files)
                if preferred_key in names:
                    array = loaded[preferred_key]
                elif len(names) == 1:
                    array = loaded[names[0]]
                else:
                    raise InputError(
                        source,
                        f".npz holds {len(names)} arrays ({', '.join(names) or 'none'}); "
                        f"name the one to use '{preferred_key}'",
                    )
    if not np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.complexfloating):
        raise InputError(source, f"expected a real numeric array, got dtype {array.dtype}")
    return array
