"""Arrow helpers shared by the stages: numpy matrices as list columns without a Python list per row, and the
rows of some brains."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


def list_array(values: np.ndarray, value_type: pa.DataType) -> pa.ListArray:
    """(n, k) array -> n lists of k values of `value_type` (one offsets buffer, the values copied once)."""
    n, k = values.shape
    offsets = pa.array(np.arange(0, n * k + 1, k, dtype=np.int32))
    return pa.ListArray.from_arrays(offsets, pa.array(values.reshape(-1), value_type), type=pa.list_(value_type))


def of_brains(t: pa.Table, brains) -> pa.Table:
    """The rows of `t` whose brain_id is in `brains` (a list or an Arrow array); all of `t` for None."""
    if brains is None:
        return t
    values = brains if isinstance(brains, pa.Array) else pa.array(brains, pa.string())
    return t.filter(pc.is_in(t["brain_id"], value_set=values))
