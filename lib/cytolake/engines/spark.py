"""Spark access to the lake: the session, a one-commit DataFrame write, and a snapshot read.

The delta-spark jars come only from Maven, which these machines cannot reach, so Spark never
talks Delta itself: executors write Parquet files into the table folder and return their
metadata; the driver commits them all with delta-rs in ONE transaction. Reads go through the
current snapshot's file list, so Spark sees exactly what delta-rs, DuckDB and Polars see.
"""

from __future__ import annotations

import json
import os
import re
import sys
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

import pyarrow as pa

from cytolake.config import SparkSettings
from cytolake.engines.class_archive import DRIVER_OPTIONS, driver_options
from cytolake.lake.tables import DataFile, DataFileWriter, Lake, WriteMode, remove_uncommitted
from cytolake.schemas import schema

LOG_CONFIG = Path(__file__).with_name("log4j2.properties")

_FILE_FIELDS = [("path", pa.string()), ("size", pa.int64()), ("num_records", pa.int64()),
                ("partition_values", pa.string()), ("stats", pa.string())]


def submitted() -> bool:
    """True when this process was started by spark-submit (its JVM is already up and passed the gateway)."""
    return "PYSPARK_GATEWAY_PORT" in os.environ


def _spark_conf_dir() -> Path:
    """Where Spark looks for its own configuration: $SPARK_CONF_DIR, else $SPARK_HOME/conf (by default the
    installed pyspark's folder)."""
    if os.environ.get("SPARK_CONF_DIR"):
        return Path(os.environ["SPARK_CONF_DIR"])
    if os.environ.get("SPARK_HOME"):
        return Path(os.environ["SPARK_HOME"], "conf")
    import pyspark

    return Path(pyspark.__file__).parent / "conf"


def log_option(settings: SparkSettings) -> str:
    """The driver's log4j2 configuration (warnings to stderr, without the start-up notices no user acts on),
    or "" where the user chose one: a `-Dlog4j2.configurationFile` (or log4j's older name for it) in the
    configured driver options, or a log4j2.properties in Spark's configuration folder."""
    if re.search(r"-Dlog4j2?\.configurationFile=", settings.conf.get(DRIVER_OPTIONS, "")) or (
            _spark_conf_dir() / "log4j2.properties").is_file():
        return ""
    return f"-Dlog4j2.configurationFile={LOG_CONFIG.as_uri()}"


def spark_session(settings: SparkSettings):
    """A SparkSession for the configured master; executors run this interpreter (the project's venv).

    Under spark-submit the master and the driver's memory are spark-submit's (`--master`, `--driver-memory`):
    `spark.master` and `spark.driver_memory` apply only to a job started with plain `python`.
    """
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    b = SparkSession.builder
    if not submitted():
        b = b.master(settings.master).config("spark.driver.memory", settings.driver_memory)
    b = (
        b.appName(settings.app_name)
        .config("spark.sql.shuffle.partitions", str(settings.shuffle_partitions))
        .config("spark.ui.enabled", str(settings.ui).lower())
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.sql.execution.arrow.maxRecordsPerBatch", "2048")
        .config("spark.python.worker.reuse", "true")
    )
    for k, v in settings.conf.items():
        b = b.config(k, v)
    options = f"{log_option(settings)} {driver_options(settings)}".strip()
    if not submitted() and options:  # under spark-submit the driver JVM is already running
        b = b.config(DRIVER_OPTIONS, options)
    spark = b.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def _file_writer_task(root: str, table: str, prefix: str):
    ts = schema(table)
    out_schema = pa.schema(_FILE_FIELDS)

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        w = DataFileWriter(root, ts, prefix)
        for b in batches:
            w.write(b)
        files = w.close()
        if files:
            yield pa.RecordBatch.from_pylist(
                [{"path": f.path, "size": f.size, "num_records": f.num_records,
                  "partition_values": json.dumps(f.partition_values), "stats": f.stats} for f in files],
                schema=out_schema,
            )

    return run


def conform(df, table: str):
    """`df` with exactly the table's columns, in order, cast to the table's types."""
    from pyspark.sql import functions as F

    ts = schema(table)
    missing = [c for c in ts.names if c not in df.columns]
    if missing:
        raise ValueError(f"DataFrame for table {table} lacks columns {missing}")
    return df.select([F.col(f.name).cast(f.dataType).alias(f.name) for f in ts.spark().fields])


def write_dataframe(
    lake: Lake, table: str, df, mode: WriteMode, partitions: dict[str, Sequence[str]] | None = None
) -> int | None:
    """Write a Spark DataFrame to a lake table in ONE Delta commit; returns the new version (None: nothing committed).

    Each Spark task writes its rows as Parquet files inside the table folder; the driver collects the
    file list and commits it. If any task fails the job raises before the commit: the table stays at
    its previous version, and the job's uncommitted files are removed.
    """
    from pyspark.sql.pandas.types import from_arrow_schema

    ts = schema(table)
    lake.ensure(table)
    root = str(lake.path(table))
    prefix = f"part-{uuid.uuid4().hex[:12]}"
    out_schema = from_arrow_schema(pa.schema(_FILE_FIELDS))
    sc = df.sparkSession.sparkContext
    before = {k: sc.getLocalProperty(k) for k in _JOB_GROUP_PROPERTIES}  # the caller's group, restored after
    sc.setJobGroup(prefix, f"write {table}", interruptOnCancel=True)
    try:
        rows = conform(df, table).mapInArrow(_file_writer_task(root, ts.name, prefix), out_schema).collect()
        files = [DataFile(r["path"], r["size"], r["num_records"], json.loads(r["partition_values"]), r["stats"])
                 for r in rows]
        return lake.commit(table, files, mode, partitions)
    except BaseException:
        _stop_job_group(sc, prefix)
        remove_uncommitted(root, prefix)
        raise
    finally:
        for k, v in before.items():
            sc.setLocalProperty(k, v)


_JOB_GROUP_PROPERTIES = ("spark.jobGroup.id", "spark.job.description", "spark.job.interruptOnCancel")


def _stop_job_group(sc, group: str, timeout_s: float = 60.0) -> None:
    """Cancel the write's jobs and wait until none of them runs: when one task fails, the job fails at
    once while its sibling tasks may still be writing files, which would land after the clean-up."""
    import time

    sc.cancelJobGroup(group)
    tracker, deadline = sc.statusTracker(), time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        jobs = [tracker.getJobInfo(j) for j in tracker.getJobIdsForGroup(group)]
        if all(j is None or j.status not in ("RUNNING", "UNKNOWN") for j in jobs) and not any(
                (info := tracker.getStageInfo(st)) is not None and info.numActiveTasks
                for j in jobs if j is not None for st in j.stageIds):
            return
        time.sleep(0.1)


def read_dataframe(spark, lake: Lake, table: str):
    """A DataFrame over the table's current snapshot (partition columns restored from the file paths)."""
    ts = schema(table)
    st = ts.spark()
    if not lake.exists(table):
        return spark.createDataFrame([], st)
    dt = lake.table(table)
    files = dt.file_uris()
    if not files:
        return spark.createDataFrame([], st)
    if ts.partition_by:
        adds = lake.files(table, dt).to_pylist()
        for a in adds:
            want = "/".join(f"{k}={a[f'partition.{k}']}" for k in ts.partition_by) + "/"
            if not a["path"].startswith(want):
                raise ValueError(f"table {table}: file {a['path']} is not under its partition folder {want}")
    root = str(lake.path(table))
    return spark.read.schema(st).option("basePath", root).parquet(*files).select(ts.names)


def rows_with_keys(spark, df, keys: pa.Table):
    """The rows of `df` whose values in `keys`' columns are one of its rows (a semi join with an Arrow table
    built on the driver, such as a stage's plan)."""
    if not keys.num_rows:
        return df.limit(0)
    return df.join(spark.createDataFrame(keys), keys.column_names, "left_semi")
