"""Row keys of Arrow tables, for the set logic of the stages' plans (which rows of one table another holds).

Arrow's hash join refuses list columns (a section's `transform`, a patch's `ref_xyz`) among the payload, so
the plans compare one string per row built from the key columns instead of joining.
"""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa
import pyarrow.compute as pc

_SEP = "\x1f"  # the unit separator: in no brain id, hash or file name
_NULL = "\x00"  # a null value: distinct from the empty string


def _text(column: pa.ChunkedArray) -> pa.ChunkedArray:
    if pa.types.is_list(column.type):
        column = pc.binary_join(pc.cast(column, pa.list_(pa.string())), "\x1e")  # the record separator
    return pc.fill_null(pc.cast(column, pa.string()), _NULL)


def row_keys(table: pa.Table, columns: Sequence[str]) -> pa.Array:
    """One string per row joining `columns` (a list column's values joined in order)."""
    parts = [_text(table[c]) for c in columns]
    return pc.binary_join_element_wise(*parts, _SEP).combine_chunks() if table.num_rows else pa.array([], pa.string())


def rows_in(table: pa.Table, other: pa.Table, columns: Sequence[str]) -> pa.Array:
    """Boolean mask of `table`'s rows whose `columns` equal those of some row of `other`."""
    return pc.is_in(row_keys(table, columns), value_set=row_keys(other, columns))
