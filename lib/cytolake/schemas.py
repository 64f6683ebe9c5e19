"""Table schemas, read from `schemas/<table>.yaml`: the one source of the Arrow and Spark schemas."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pyarrow as pa
import yaml

SCHEMA_DIR = Path(os.environ.get("CYTOLAKE_SCHEMAS", Path(__file__).resolve().parents[2] / "schemas"))

_ARROW_SCALARS = {
    "string": pa.string(),
    "bool": pa.bool_(),
    "int16": pa.int16(),
    "int32": pa.int32(),
    "int64": pa.int64(),
    "float32": pa.float32(),
    "float64": pa.float64(),
    "timestamp": pa.timestamp("us", tz="UTC"),
    "binary": pa.binary(),
}
_LIST = re.compile(r"^list<(\w+)>$")


def arrow_type(name: str) -> pa.DataType:
    if name in _ARROW_SCALARS:
        return _ARROW_SCALARS[name]
    m = _LIST.match(name)
    if m and m.group(1) in _ARROW_SCALARS:
        return pa.list_(pa.field("element", _ARROW_SCALARS[m.group(1)]))
    raise ValueError(f"unknown column type {name!r}")


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    nullable: bool = True
    doc: str = ""


@dataclass(frozen=True)
class TableSchema:
    name: str
    description: str
    key: tuple[str, ...]
    partition_by: tuple[str, ...]
    columns: tuple[Column, ...]

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    def arrow(self) -> pa.Schema:
        """The table's Arrow schema (also the Delta schema committed by delta-rs)."""
        return pa.schema([pa.field(c.name, arrow_type(c.type), c.nullable) for c in self.columns])

    def file_arrow(self) -> pa.Schema:
        """The schema of the Parquet data files: the table schema without partition columns."""
        return pa.schema([f for f in self.arrow() if f.name not in self.partition_by])

    def spark(self):
        """The table's Spark StructType, derived from the Arrow schema."""
        from pyspark.sql.pandas.types import from_arrow_schema

        return from_arrow_schema(self.arrow())

    def empty(self) -> pa.Table:
        return self.arrow().empty_table()

    def table(self, rows: list[dict]) -> pa.Table:
        """An Arrow table with this schema from a list of row dicts (missing keys are null)."""
        return pa.Table.from_pylist([{n: r.get(n) for n in self.names} for r in rows], schema=self.arrow())


def _parse(path: Path) -> TableSchema:
    raw = yaml.safe_load(path.read_text())
    unknown = set(raw) - {"table", "description", "key", "partition_by", "columns"}
    if unknown:
        raise ValueError(f"{path}: unknown keys {sorted(unknown)}")
    cols = tuple(Column(**c) for c in raw["columns"])
    names = [c.name for c in cols]
    for c in cols:
        arrow_type(c.type)
    for k in (*raw.get("key", []), *raw.get("partition_by", [])):
        if k not in names:
            raise ValueError(f"{path}: key/partition column {k!r} is not a column")
    if raw["table"] != path.stem:
        raise ValueError(f"{path}: table name {raw['table']!r} differs from the file name")
    return TableSchema(
        name=raw["table"],
        description=raw.get("description", ""),
        key=tuple(raw.get("key", [])),
        partition_by=tuple(raw.get("partition_by", [])),
        columns=cols,
    )


@cache
def schema(table: str) -> TableSchema:
    path = SCHEMA_DIR / f"{table}.yaml"
    if not path.is_file():
        raise KeyError(f"no schema for table {table!r} (looked for {path})")
    return _parse(path)


def table_names() -> list[str]:
    return sorted(p.stem for p in SCHEMA_DIR.glob("*.yaml"))
