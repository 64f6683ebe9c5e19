"""Read-only SQL over every lake table with DuckDB (table names are SQL names)."""

from __future__ import annotations

import duckdb
import pyarrow as pa

from cytolake.lake.tables import Lake
from cytolake.schemas import table_names


class ReadOnlyError(ValueError):
    """A statement that would change something was refused."""


def connect(lake: Lake) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with a view per existing lake table and no file-system access."""
    con = duckdb.connect()
    for name in table_names():
        if lake.exists(name):
            con.register(name, lake.table(name).to_pyarrow_dataset())
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")
    return con


def query(lake: Lake, sql: str) -> pa.Table:
    """Run one or more SELECT statements; the result of the last. Anything else is refused."""
    statements = duckdb.extract_statements(sql)
    if not statements:
        raise ReadOnlyError("empty query")
    for st in statements:
        if st.type != duckdb.StatementType.SELECT:
            raise ReadOnlyError(f"only SELECT queries are allowed; refused a {st.type.name} statement")
    return connect(lake).sql(sql).to_arrow_table()
