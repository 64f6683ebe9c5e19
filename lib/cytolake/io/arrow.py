"""Numpy matrices as Arrow list columns without a Python list per row."""

from __future__ import annotations

import numpy as np
import pyarrow as pa


def list_array(values: np.ndarray, value_type: pa.DataType) -> pa.ListArray:
    """(n, k) array -> n lists of k values of `value_type` (one offsets buffer, the values copied once)."""
    n, k = values.shape
    offsets = pa.array(np.arange(0, n * k + 1, k, dtype=np.int32))
    return pa.ListArray.from_arrays(offsets, pa.array(values.reshape(-1), value_type), type=pa.list_(value_type))
