"""Read-only SQL over every lake table with DuckDB (table names are SQL names)."""

from __future__ import annotations

import duckdb
import pyarrow as pa

from cytolake.lake.tables import Lake
from cytolake.schemas import schema, table_names


class ReadOnlyError(ValueError):
    """A statement that would change something was refused."""


def _quote(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def connect(lake: Lake) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with a view per existing lake table over its current snapshot's files, and no
    file-system access outside the lake folder.

    The views read Parquet with DuckDB's own reader: registering pyarrow datasets instead breaks every
    string filter (DuckDB 2.0 pushes string_view literals that pyarrow cannot compare).
    """
    con = duckdb.connect()
    for name in table_names():
        if not lake.exists(name):
            continue
        ts = schema(name)
        files = lake.table(name).file_uris()
        if not files:
            con.register(f"_empty_{name}", ts.empty())
            con.execute(f'CREATE VIEW "{name}" AS SELECT * FROM "_empty_{name}"')
            continue
        cols = ", ".join(f'"{c}"' for c in ts.names)
        listing = ", ".join(_quote(f.removeprefix("file://")) for f in files)
        hive = "true" if ts.partition_by else "false"
        con.execute(f'CREATE VIEW "{name}" AS SELECT {cols} FROM read_parquet([{listing}], '
                    f"hive_partitioning = {hive}, union_by_name = true)")
    con.execute(f"SET allowed_directories = [{_quote(str(lake.root))}]")
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
