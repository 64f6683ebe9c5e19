"""Delta tables on disk, through delta-rs.

A `Lake` knows where each table lives and its schema (from `schemas/`). Writes are single
Delta commits: data files are written first (invisible until committed), then one
transaction adds them, so a crash before the commit leaves the table as it was.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pyarrow as pa
import pyarrow.parquet as pq
from deltalake import DeltaTable, Schema
from deltalake.exceptions import TableNotFoundError
from deltalake.transaction import AddAction, CommitProperties, create_table_with_add_actions

from cytolake.lake.delta_log import damaged_log_file
from cytolake.schemas import TableSchema, schema, table_names

WriteMode = Literal["append", "overwrite", "replace_partitions"]


@dataclass(frozen=True)
class DataFile:
    """A Parquet file written inside a table folder, not yet committed."""

    path: str  # relative to the table root
    size: int
    num_records: int
    partition_values: dict[str, str]
    stats: str

    def add_action(self) -> AddAction:
        return AddAction(self.path, self.size, self.partition_values, int(time.time() * 1000), True, self.stats)


def _stat_value(v):
    if isinstance(v, (bytes, bytearray)):
        return None
    if hasattr(v, "isoformat"):
        return v.isoformat().replace("+00:00", "Z")
    return v


def chunk_stats(table: pa.Table) -> dict:
    """Delta per-file statistics of one chunk: numRecords, and min/max/nullCount of scalar columns."""
    mins, maxs, nulls = {}, {}, {}
    for name, col in zip(table.column_names, table.columns):
        t = col.type
        if pa.types.is_list(t) or pa.types.is_binary(t):
            continue
        nulls[name] = col.null_count
        if len(col) > col.null_count and not pa.types.is_boolean(t):
            mm = pa.compute.min_max(col).as_py()
            mins[name], maxs[name] = _stat_value(mm["min"]), _stat_value(mm["max"])
    return {"numRecords": table.num_rows, "minValues": mins, "maxValues": maxs, "nullCount": nulls}


def partition_dir(partition_by: Sequence[str], values: dict[str, str]) -> str:
    """Hive-style folder for a partition, e.g. `brain_id=B01`; values are plain ids (see BRAIN_ID_PATTERN)."""
    return "/".join(f"{k}={values[k]}" for k in partition_by)


class DataFileWriter:
    """Streams Arrow batches into Parquet files inside a table folder, one file per partition value.

    Batches are buffered to about `row_group_bytes` before a row group is written, so memory stays
    bounded however large the input. Files are named `<prefix>-<uuid>.parquet`, so retried or
    concurrent tasks never collide; partition columns are kept out of the files (Delta stores them
    in the log). Nothing is visible in the table until the files are committed.
    """

    def __init__(self, root: str | Path, ts: TableSchema, prefix: str, row_group_bytes: int = 64 << 20):
        self.root, self.ts, self.prefix, self.row_group_bytes = Path(root), ts, prefix, row_group_bytes
        self._open: dict[tuple, dict] = {}
        self._arrow = ts.arrow()

    def write(self, data: pa.Table | pa.RecordBatch) -> None:
        import pyarrow.compute as pc

        table = pa.Table.from_batches([data]) if isinstance(data, pa.RecordBatch) else data
        table = table.select(self.ts.names).cast(self._arrow)
        if not table.num_rows:
            return
        pcols = list(self.ts.partition_by)
        keys = table.select(pcols).group_by(pcols).aggregate([]).to_pylist() if pcols else [{}]
        for key in keys:
            part = table
            for k, v in key.items():
                if v is None:
                    raise ValueError(f"table {self.ts.name}: partition column {k} is null")
                part = part.filter(pc.equal(part[k], v))
            self._append(tuple(str(key[k]) for k in pcols), part.drop_columns(pcols))

    def _append(self, key: tuple, data: pa.Table) -> None:
        f = self._open.get(key)
        if f is None:
            values = dict(zip(self.ts.partition_by, key))
            rel_dir = partition_dir(self.ts.partition_by, values)
            name = f"{self.prefix}-{uuid.uuid4().hex}.parquet"
            rel = f"{rel_dir}/{name}" if rel_dir else name
            (self.root / rel).parent.mkdir(parents=True, exist_ok=True)
            f = self._open[key] = {"rel": rel, "values": values, "buf": [], "bytes": 0, "rows": 0, "stats": [],
                                   "writer": pq.ParquetWriter(self.root / rel, self.ts.file_arrow(), compression="zstd")}
        f["buf"].append(data)
        f["bytes"] += data.nbytes
        f["rows"] += data.num_rows
        f["stats"].append(chunk_stats(data))
        if f["bytes"] >= self.row_group_bytes:
            self._flush(f)

    @staticmethod
    def _flush(f: dict) -> None:
        if f["buf"]:
            t = pa.concat_tables(f["buf"])
            f["writer"].write_table(t, row_group_size=t.num_rows)
            f["buf"], f["bytes"] = [], 0

    def close(self) -> list[DataFile]:
        out = []
        for f in self._open.values():
            self._flush(f)
            f["writer"].close()
            size = (self.root / f["rel"]).stat().st_size
            out.append(DataFile(f["rel"], size, f["rows"], f["values"], merge_stats(f["stats"])))
        self._open.clear()
        return out


def merge_stats(chunks: list[dict]) -> str:
    """The Delta statistics JSON of a file from those of its consecutive chunks."""
    out = {"numRecords": sum(d["numRecords"] for d in chunks), "minValues": {}, "maxValues": {}, "nullCount": {}}
    for d in chunks:
        for k, v in d["nullCount"].items():
            out["nullCount"][k] = out["nullCount"].get(k, 0) + v
        for k, v in d["minValues"].items():
            out["minValues"][k] = v if k not in out["minValues"] else min(out["minValues"][k], v)
        for k, v in d["maxValues"].items():
            out["maxValues"][k] = v if k not in out["maxValues"] else max(out["maxValues"][k], v)
    return json.dumps(out)


def remove_uncommitted(root: str | Path, prefix: str) -> int:
    """Delete the data files a failed job wrote (named with its prefix); committed files are never touched."""
    n = 0
    for p in Path(root).rglob(f"{prefix}-*.parquet"):
        p.unlink(missing_ok=True)
        n += 1
    return n


# The Delta writer protocol our writers honour: Spark tasks write plain Parquet files and delta-rs commits their
# names, so nothing enforces check constraints, generated or identity columns, column mapping or change data
# feed on those files. Writer version 2 is what cytolake creates its tables at; a table on writer version 7
# (table features) is written when it names no feature beyond version 2's two.
WRITER_VERSION = 2
WRITER_FEATURES = frozenset({"appendOnly", "invariants"})


class TableNotWritable(RuntimeError):
    """A table whose Delta protocol asks for a newer writer than cytolake is; nothing may be written to it."""


def writer_problem(dt: DeltaTable) -> str | None:
    """Why cytolake cannot write this table (its protocol asks for more than WRITER_VERSION), None when it can."""
    p = dt.protocol()
    features = set(p.writer_features or ())
    if p.min_writer_version <= WRITER_VERSION or (p.min_writer_version == 7 and features <= WRITER_FEATURES):
        return None
    extra = sorted(features - WRITER_FEATURES)
    asks = f"writer version {p.min_writer_version}" + (f" with features {', '.join(extra)}" if extra else "")
    return (f"its protocol asks for {asks}; cytolake writes up to writer version {WRITER_VERSION} "
            f"({', '.join(sorted(WRITER_FEATURES))}), so it writes nothing to this table (written by a newer Delta writer?)")


class Lake:
    """The Delta tables of one lake root (`paths.lake`)."""

    def __init__(self, root: str | Path):
        self.root = Path(root).resolve()

    def path(self, name: str) -> Path:
        schema(name)  # an unknown table is an error here, not a stray folder
        return self.root / name

    def exists(self, name: str) -> bool:
        return (self.path(name) / "_delta_log").is_dir()

    def ensure(self, name: str) -> DeltaTable:
        """The table to write, created empty with its schema and partitioning if it does not exist yet;
        TableNotWritable when its protocol asks for a newer writer (every writer calls this before writing)."""
        ts = schema(name)
        p = self.path(name)
        if not self.exists(name):
            p.mkdir(parents=True, exist_ok=True)
            try:
                create_table_with_add_actions(
                    str(p), Schema.from_arrow(ts.arrow()), [], mode="ignore", partition_by=list(ts.partition_by) or None,
                    name=name, description=ts.description,
                )
            except Exception:  # a concurrent creator won; the table is there
                if not self.exists(name):
                    raise
        dt = DeltaTable(str(p))
        if (why := writer_problem(dt)) is not None:
            raise TableNotWritable(f"table {name} ({p}): {why}")
        return dt

    def table(self, name: str) -> DeltaTable:
        try:
            return DeltaTable(str(self.path(name)))
        except TableNotFoundError:
            raise FileNotFoundError(f"lake table {name!r} does not exist under {self.root} (run ingest first)") from None

    def files(self, name: str, snapshot: DeltaTable | None = None) -> pa.Table:
        """The data files of the table's current snapshot (or of `snapshot`, a loaded version of it), one row
        each, sorted by path: the flattened Delta add actions (`path` relative to the table folder,
        `size_bytes`, `num_records`, `partition.<column>`, ...)."""
        adds = pa.table((self.table(name) if snapshot is None else snapshot).get_add_actions(flatten=True))
        return adds.sort_by("path") if adds.num_rows else adds

    def file_paths(self, name: str, prefix: str = "") -> list[str]:
        """The sorted paths (relative to the table folder) of the current files under `prefix`, such as
        `brain_id=B01/`; none when the table does not exist. Data files are never rewritten in place, so
        the names stand for the content."""
        if not self.exists(name):
            return []
        return [p for p in self.files(name)["path"].to_pylist() if p.startswith(prefix)]

    def missing_columns(self, name: str) -> list[str]:
        """The columns of the table's schema (`schemas/`) that its Delta schema lacks: columns added to the
        schema after the table was last written; empty for a table not written yet."""
        if not self.exists(name):
            return []
        have = {f.name for f in self.table(name).schema().fields}
        return [c for c in schema(name).names if c not in have]

    def version(self, name: str) -> int | None:
        return self.table(name).version() if self.exists(name) else None

    def read(self, name: str, columns: list[str] | None = None, filters=None) -> pa.Table:
        """The table's current snapshot as Arrow (empty with the schema if the table does not exist)."""
        ts = schema(name)
        if not self.exists(name):
            t = ts.empty()
            return t.select(columns) if columns else t
        return self.table(name).to_pyarrow_dataset().to_table(columns=columns, filter=filters)

    def commit(
        self,
        name: str,
        files: Iterable[DataFile],
        mode: WriteMode,
        partitions: dict[str, Sequence[str]] | None = None,
    ) -> int | None:
        """Commit written files in ONE Delta transaction; returns the new version, or None if nothing to do.

        append adds the files; overwrite replaces the whole table; replace_partitions removes the
        current files of the given partition values (e.g. {"brain_id": ["B01"]}) and adds the new ones.
        """
        ts = schema(name)
        files = list(files)
        dt = self.ensure(name)
        actions = [f.add_action() for f in files]
        part = list(ts.partition_by) or None

        def counted(removed: int) -> CommitProperties:
            # The entry's own count of its actions: `lake.check` compares it with the lines the entry holds,
            # which is how a log entry cut at a line boundary (still valid JSON lines) is found.
            return CommitProperties(custom_metadata={"cytolake.adds": str(len(actions)), "cytolake.removes": str(removed),
                                                     "cytolake.rows": str(sum(f.num_records for f in files))})

        if mode == "append":
            if not actions:
                return None
            dt.create_write_transaction(actions, mode="append", schema=ts.arrow(), partition_by=part,
                                        commit_properties=counted(0))
        elif mode == "overwrite":
            dt.create_write_transaction(actions, mode="overwrite", schema=ts.arrow(), partition_by=part,
                                        commit_properties=counted(len(dt.file_uris())))
        elif mode == "replace_partitions":
            if not partitions or not all(partitions.values()):
                raise ValueError("replace_partitions needs the partition values to replace")
            bad = set(partitions) - set(ts.partition_by)
            if bad:
                raise ValueError(f"table {name} is not partitioned by {sorted(bad)}")
            filters = [(k, "in", [str(v) for v in vs]) for k, vs in partitions.items()]
            dt.create_write_transaction(
                actions, mode="overwrite", schema=ts.arrow(), partition_by=list(ts.partition_by), partition_filters=filters,
                commit_properties=counted(len(dt.file_uris(partition_filters=filters))),
            )
        else:
            raise ValueError(f"unknown write mode {mode!r}")
        return DeltaTable(str(self.path(name))).version()

    def write_arrow(
        self, name: str, data: pa.Table, mode: WriteMode, partitions: dict[str, Sequence[str]] | None = None
    ) -> int | None:
        """Write an Arrow table from this process in one commit (for tables built on the driver)."""
        return self.write_batches(name, [data], mode, partitions)

    def write_batches(self, name: str, batches: Iterable[pa.Table], mode: WriteMode,
                      partitions: dict[str, Sequence[str]] | None = None) -> int | None:
        """Write a stream of Arrow tables (too big to hold at once) as the files of one commit; a failure
        removes the files written so far and leaves the table as it was."""
        prefix = f"part-{uuid.uuid4().hex[:8]}"
        self.ensure(name)
        try:
            w = DataFileWriter(self.path(name), schema(name), prefix)
            for b in batches:
                w.write(b)
            return self.commit(name, w.close(), mode, partitions)
        except BaseException:
            remove_uncommitted(self.path(name), prefix)
            raise

    def merge(self, name: str, source: pa.Table, delete: Sequence[dict] = ()) -> int | None:
        """Upsert rows by the table's key and delete the rows whose keys are in `delete`, in one commit
        (for small registry tables); returns the new version, None when there was nothing to do."""
        ts = schema(name)
        if source.num_rows == 0 and not delete:
            return None
        dt = self.ensure(name)
        pred = " AND ".join(f"t.{k} = s.{k}" for k in ts.key)
        m = (dt.merge(source.select(ts.names).cast(ts.arrow()), predicate=pred, source_alias="s", target_alias="t",
                      merge_schema=True)  # columns added to the schema since the table was created are added
             .when_matched_update_all()
             .when_not_matched_insert_all())
        if delete:
            m = m.when_not_matched_by_source_delete(" OR ".join(
                "(" + " AND ".join(f"t.{k} = {_sql_literal(d[k])}" for k in ts.key) + ")" for d in delete))
        m.execute()
        return DeltaTable(str(self.path(name))).version()

    def unwritable(self) -> dict[str, str]:
        """Per table that exists and loads but whose protocol asks for a newer writer, why (`writer_problem`)."""
        out = {}
        for name in table_names():
            if self.exists(name):
                try:
                    dt = self.table(name)
                except Exception:  # a damaged log: `check` names it, and it fails any writer on its own
                    continue
                if (why := writer_problem(dt)) is not None:
                    out[name] = why
        return out

    def stats(self) -> list[dict]:
        """Per table: version, rows, files and bytes of the current snapshot (from the log, no data read).

        A table whose log cannot be loaded gets a row with `error` (naming the damaged log entry when one
        is found) instead of stopping the listing."""
        out = []
        for name in table_names():
            if not self.exists(name):
                continue
            try:
                dt = self.table(name)
                adds = self.files(name, dt)
            except Exception as e:  # delta-rs raises several kinds of error on a damaged log
                where = damaged_log_file(name, self.path(name)) or str(self.path(name) / "_delta_log")
                out.append({"table": name, "version": None, "rows": None, "files": None, "bytes": None,
                            "path": str(self.path(name)), "error": f"{where}: {type(e).__name__}: {e}"})
                continue
            out.append(
                {
                    "table": name,
                    "version": dt.version(),
                    "rows": int(pa.compute.sum(adds["num_records"]).as_py() or 0) if adds.num_rows else 0,
                    "files": adds.num_rows,
                    "bytes": int(pa.compute.sum(adds["size_bytes"]).as_py() or 0) if adds.num_rows else 0,
                    "path": str(self.path(name)),
                    "error": None,
                }
            )
        return out


def _sql_literal(v) -> str:
    """A key value as a SQL literal for a merge predicate (keys are ids and integers)."""
    if isinstance(v, bool) or v is None:
        raise ValueError(f"unsupported key value {v!r}")
    if isinstance(v, (int, float)):
        return repr(v)
    return "'" + str(v).replace("'", "''") + "'"
