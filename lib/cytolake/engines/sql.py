"""Read-only SQL over every lake table: DuckDB (the default) or Spark SQL, table names as SQL names.

Both engines see each table's current snapshot. A table whose snapshot cannot be read (a damaged log, a
data file the log names but the folder lacks) or that lacks a column of its schema (written before the
column was added) is left out and reported in `Session.damaged`; the other tables stay usable. Results
stream: only the rows asked for are fetched, under the limits of `SqlSettings` (memory, time), and a query
stopped by one says which (`QueryStopped`).
"""

from __future__ import annotations

import os
import re
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pyarrow as pa

from cytolake.config import SqlSettings, load_config
from cytolake.engines.spark import read_dataframe, spark_session
from cytolake.lake.delta_log import damaged_log_file
from cytolake.lake.tables import Lake
from cytolake.schemas import schema, table_names

BATCH_ROWS = 1024


class ReadOnlyError(ValueError):
    """A statement that would change something was refused."""


class QueryStopped(RuntimeError):
    """A query stopped by one of the `sql` limits; the message names the limit and its config key."""


@dataclass
class Result:
    """A query's column names (repeats kept, in order) and its rows as a stream of Arrow batches."""

    columns: list[str]
    batches: Iterator[pa.RecordBatch]
    damaged: dict[str, str] = field(default_factory=dict)  # table -> why it was left out


def _quote(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def snapshot_files(lake: Lake, name: str, snapshot=None) -> list[str]:
    """The local paths of a table's current files (or of `snapshot`, a DeltaTable loaded at another version:
    `lake/history.py`); ValueError naming the table and file when the log cannot be loaded or a file it names
    is missing (what `cytolake check` reports in full)."""
    try:
        uris = (snapshot or lake.table(name)).file_uris()
    except Exception as e:  # delta-rs raises several kinds of error on a damaged log
        where = damaged_log_file(name, lake.path(name)) or str(lake.path(name) / "_delta_log")
        raise ValueError(f"{where}: the log cannot be loaded ({type(e).__name__}: {e})") from None
    files = [u.removeprefix("file://") for u in uris]
    for f in files:
        if not os.path.isfile(f):
            raise ValueError(f"{f}: missing (the log names it)")
    return files


def check_current_schema(lake: Lake, name: str) -> None:
    """ValueError naming the columns of its schema that the table was last written without: a view would give
    them as nulls (Spark) or fail to bind them (DuckDB), so the table is left out until the job that writes it
    runs again and adds them (an `areas` table from before `label`: ingest)."""
    if missing := lake.missing_columns(name):
        remedy = ("run ingest again (it rewrites areas, nothing else)" if name == "areas" else
                  "no job migrates this table yet: move its folder aside and rerun the job that writes it "
                  "(docs/operations.md, Recovery), or read the version it was written at with `sql --version`")
        raise ValueError(f"its schema is out of date: written before column(s) {', '.join(missing)} were added to "
                         f"schemas/{name}.yaml; {remedy}")


def connect(lake: Lake, limits: SqlSettings | None = None, snapshots: dict | None = None
            ) -> tuple[duckdb.DuckDBPyConnection, dict[str, str]]:
    """A DuckDB connection with a view per readable lake table over its current snapshot's files, no
    file-system access outside the lake folder, and the memory and thread limits set; and the tables left
    out, with why. `snapshots`: tables to read at another version (table -> a loaded DeltaTable, or None for a
    table that did not exist yet at the time asked for: empty, with its schema).

    The views read Parquet with DuckDB's own reader: registering pyarrow datasets instead breaks every
    string filter (DuckDB 2.0 pushes string_view literals that pyarrow cannot compare).
    """
    limits = limits or SqlSettings()
    con = duckdb.connect()
    damaged: dict[str, str] = {}
    for name in table_names():
        if not lake.exists(name):
            continue
        ts = schema(name)
        try:
            at = (snapshots or {}).get(name)
            files = [] if name in (snapshots or {}) and at is None else snapshot_files(lake, name, at)
            if name not in (snapshots or {}):
                check_current_schema(lake, name)
            if not files:
                con.register(f"_empty_{name}", ts.empty())
                con.execute(f'CREATE VIEW "{name}" AS SELECT * FROM "_empty_{name}"')
                continue
            # an earlier version reads as written then: without the columns added to the schema since
            have = {f.name for f in at.schema().fields} if at is not None else set(ts.names)
            cols = ", ".join(f'"{c}"' for c in ts.names if c in have)
            listing = ", ".join(_quote(f) for f in files)
            hive = "true" if ts.partition_by else "false"
            con.execute(f'CREATE VIEW "{name}" AS SELECT {cols} FROM read_parquet([{listing}], '
                        f"hive_partitioning = {hive}, union_by_name = true)")
        except (ValueError, duckdb.Error) as e:
            damaged[name] = str(e)
    con.execute(f"SET memory_limit = {_quote(limits.memory_limit)}")
    con.execute("SET temp_directory = ''")  # nothing spills: the memory limit is the query's limit
    if limits.threads:
        con.execute(f"SET threads = {int(limits.threads)}")
    con.execute(f"SET allowed_directories = [{_quote(str(lake.root))}]")
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")
    return con, damaged


def _select_only(sql: str) -> list[str]:
    statements = duckdb.extract_statements(sql)
    if not statements:
        raise ReadOnlyError("empty query")
    for st in statements:
        if st.type != duckdb.StatementType.SELECT:
            raise ReadOnlyError(f"only SELECT queries are allowed; refused a {st.type.name} statement")
    return [st.query for st in statements]


class _Deadline:
    """Calls `cancel` once `timeout_s` seconds have passed, unless stopped first; `fired` says whether it did."""

    def __init__(self, timeout_s: float, cancel):
        self.fired = threading.Event()
        self._cancel = cancel
        self._timer = threading.Timer(timeout_s, self._fire)
        self._timer.daemon = True
        self._timer.start()

    def _fire(self) -> None:
        self.fired.set()
        self._cancel()

    def stop(self) -> None:
        self._timer.cancel()


def _stopped(e: BaseException, fired: threading.Event, limits: SqlSettings) -> QueryStopped | None:
    if fired.is_set():
        return QueryStopped(f"query stopped: it ran past the time limit of {limits.timeout_s:g} s (sql.timeout_s)")
    if isinstance(e, duckdb.OutOfMemoryException):
        return QueryStopped(f"query stopped: it needed more than the memory limit of {limits.memory_limit} "
                            "(sql.memory_limit)")
    return None


def run_duckdb(lake: Lake, sql: str, limits: SqlSettings | None = None, snapshots: dict | None = None) -> Result:
    """Run one or more SELECT statements with DuckDB; the streamed result of the last. Anything else is refused.
    `snapshots`: tables read at another version than the current one (`lake/history.py: snapshots`)."""
    limits = limits or SqlSettings()
    statements = _select_only(sql)
    con, damaged = connect(lake, limits, snapshots)
    timer = _Deadline(limits.timeout_s, con.interrupt)
    fired = timer.fired
    try:
        for st in statements[:-1]:
            con.sql(st)  # bound (a wrong one fails here), not run: a SELECT whose rows nobody sees changes nothing
        reader = con.sql(statements[-1]).to_arrow_reader(BATCH_ROWS)  # streams; execute() would materialise
    except BaseException as e:
        timer.stop()
        stop = _stopped(e, fired, limits)
        if stop:
            raise stop from None
        raise _with_damage(e, damaged) from None

    def batches() -> Iterator[pa.RecordBatch]:
        try:
            for b in reader:
                yield b
        except duckdb.Error as e:
            raise (_stopped(e, fired, limits) or e) from None
        finally:
            timer.stop()
            con.close()

    return Result(list(reader.schema.names), batches(), damaged)


def _with_damage(e: BaseException, damaged: dict[str, str]) -> BaseException:
    """A query that failed on a table left out says why it was left out."""
    named = [t for t in damaged if t in str(e)]
    if not named or not isinstance(e, Exception):
        return e
    return RuntimeError(f"{type(e).__name__}: {e}\n" + "\n".join(f"table {t} is damaged and left out: {damaged[t]}"
                                                                  for t in named))


def query(lake: Lake, sql: str, limits: SqlSettings | None = None) -> pa.Table:
    """The whole result of `sql` (DuckDB) as one Arrow table: for code and tests; the CLI streams instead."""
    r = run_duckdb(lake, sql, limits)
    got = list(r.batches)
    return pa.Table.from_batches(got) if got else pa.table({c: pa.array([], pa.null()) for c in dict.fromkeys(r.columns)})


# --- Spark SQL -------------------------------------------------------------------------------------------


def register_views(spark, lake: Lake) -> dict[str, str]:
    """Every lake table as a Spark temporary view (its name) over its current snapshot; returns the tables
    left out, with why. Views are replaced, so calling it again shows the snapshots current then."""
    damaged: dict[str, str] = {}
    for name in table_names():
        if not lake.exists(name):
            continue
        try:
            snapshot_files(lake, name)
            check_current_schema(lake, name)
            read_dataframe(spark, lake, name).createOrReplaceTempView(name)
        except Exception as e:  # a damaged table: the others stay usable
            spark.catalog.dropTempView(name)
            damaged[name] = str(e)
    return damaged


# Root plan nodes of statements that are not queries, by name: a second net under the classes above.
_WRITES = re.compile(r"Insert|Command|Create|Drop|Alter|Delete|Update|Merge|Truncate|Refresh|Cache|Load|Repair|"
                     r"Analyze|Write|Overwrite|^Set|^Reset|^Use")


def _spark_select_only(spark, sql: str) -> None:
    """Refuse anything but a query, by Spark's own parser: commands (CREATE, INSERT, SET, ...) parse to
    plans that are not queries."""
    jvm = spark.sparkContext._jvm
    parser = spark._jsparkSession.sessionState().sqlParser()
    try:
        plan = parser.parsePlan(sql)
    except Exception as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ValueError(f"Spark cannot parse the query: {msg}") from None
    forbidden = ["org.apache.spark.sql.catalyst.plans.logical.Command",
                 "org.apache.spark.sql.catalyst.plans.logical.ParsedStatement",
                 "org.apache.spark.sql.catalyst.plans.logical.InsertIntoStatement",
                 "org.apache.spark.sql.catalyst.plans.logical.V2WriteCommand",
                 "org.apache.spark.sql.catalyst.plans.logical.InsertIntoDir"]
    for cls in forbidden:
        try:
            k = jvm.java.lang.Class.forName(cls)
        except Exception:  # not in this Spark version
            continue
        if k.isInstance(plan):
            raise ReadOnlyError(f"only SELECT queries are allowed; refused a {plan.nodeName()} statement")
    if _WRITES.search(plan.nodeName()):
        raise ReadOnlyError(f"only SELECT queries are allowed; refused a {plan.nodeName()} statement")


def _time_limit_hit(limits: SqlSettings) -> QueryStopped:
    return QueryStopped(f"query stopped: it ran past the time limit of {limits.timeout_s:g} s (sql.timeout_s)")


def run_spark(spark, lake: Lake, sql: str, max_rows: int | None, limits: SqlSettings | None = None) -> Result:
    """Run one query with Spark SQL over temporary views of the lake's tables; stream the first `max_rows`
    rows (None: all, partition by partition). Only queries are run (`_spark_select_only`), and queries over
    files (`parquet.\\`/path\\``) are off."""
    limits = limits or SqlSettings()
    spark.conf.set("spark.sql.runSQLOnFiles", "false")
    damaged = register_views(spark, lake)
    _spark_select_only(spark, sql)
    sc = spark.sparkContext
    group = f"cytolake-sql-{uuid.uuid4().hex[:8]}"
    sc.setJobGroup(group, "cytolake sql", interruptOnCancel=True)
    timer = _Deadline(limits.timeout_s, lambda: sc.cancelJobGroup(group))
    try:
        df = spark.sql(sql)
        source = df.limit(max_rows + 1).toArrow().to_batches(BATCH_ROWS) if max_rows is not None else None
    except Exception as e:
        timer.stop()
        if timer.fired.is_set():
            raise _time_limit_hit(limits) from None
        raise _with_damage(e, damaged) from None
    return Result(list(df.columns), _spark_batches(df, source, timer, limits), damaged)


def _spark_batches(df, source: list[pa.RecordBatch] | None, timer: "_Deadline",
                   limits: SqlSettings) -> Iterator[pa.RecordBatch]:
    """The result's batches: the collected first rows (`source`), or every row partition by partition;
    the deadline is stopped when the stream ends, and named when it cut the stream."""
    columns = list(df.columns)
    try:
        if source is not None:
            yield from source
            return
        rows = []
        for row in df.toLocalIterator():
            rows.append(tuple(row))
            if len(rows) == BATCH_ROWS:
                yield _rows_batch(columns, rows)
                rows = []
        if rows:
            yield _rows_batch(columns, rows)
    except Exception:
        if timer.fired.is_set():
            raise _time_limit_hit(limits) from None
        raise
    finally:
        timer.stop()


def _rows_batch(columns: list[str], rows: list[tuple]) -> pa.RecordBatch:
    return pa.RecordBatch.from_arrays([pa.array([r[i] for r in rows]) for i in range(len(columns))], names=columns)


def lake_session(config: str | Path = "conf/local.yaml"):
    """A Spark session (the config's `spark` settings) with every lake table of the config's lake registered
    as a temporary view by its name, for Spark SQL and DataFrames over the lake from Python:
    `.venv/bin/python -i -c "from cytolake.engines.sql import lake_session; spark = lake_session('conf/local.yaml')"`.
    A damaged table is left out with a warning on stderr; the views show the snapshots current when called."""
    cfg = load_config(config)
    spark = spark_session(cfg.spark)
    for name, why in register_views(spark, Lake(cfg.paths.lake)).items():
        print(f"warning: table {name} is damaged and left out: {why}", file=sys.stderr)
    return spark
