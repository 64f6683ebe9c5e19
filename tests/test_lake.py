"""The lake layer on a real local Spark session and real Delta tables."""

import subprocess
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest
from deltalake import DeltaTable
from pyspark.sql import functions as F

from cytolake.config import SparkSettings
from cytolake.engines.class_archive import CLASS_ARCHIVE, DRIVER_OPTIONS, driver_options, environment_key
from cytolake.engines.class_archive_writer import write
from cytolake.engines.spark import LOG_CONFIG, log_option, read_dataframe, write_dataframe
from cytolake.lake import Lake
from cytolake.schemas import schema


def features_df(spark, n=120, parts=7, brains=("B01", "B02", "B03")):
    return spark.range(0, n, numPartitions=parts).select(
        F.format_string("p%05d", "id").alias("patch_id"),
        F.lit("m1").alias("model_version"),
        F.element_at(F.array(*[F.lit(b) for b in brains]), (F.col("id") % len(brains) + 1).cast("int")).alias("brain_id"),
        F.lit("c").alias("content_hash"), F.lit("t").alias("tiling_hash"), F.lit("e").alias("encoder_hash"),
        F.array(F.col("id").cast("float"), F.lit(0.5)).alias("embedding"),
    )


def committed_files(lake: Lake, table: str) -> set[str]:
    return set(pa.table(DeltaTable(str(lake.path(table))).get_add_actions(flatten=True))["path"].to_pylist())


def parquet_files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*.parquet")}


def test_driver_options_put_the_class_archive_before_the_configured_ones_only_for_this_jdk_and_pyspark(tmp_path):
    archive = tmp_path / "classes.jsa"
    mapped = f"-Xlog:disable -Xlog:all=warning:stderr -XX:SharedArchiveFile={archive}"
    jit = SparkSettings(conf={"spark.driver.extraJavaOptions": "-XX:TieredStopAtLevel=1"})
    assert driver_options(jit, archive) == "-XX:TieredStopAtLevel=1"  # no archive written: nothing to map
    archive.write_bytes(b"an archive")
    assert driver_options(jit, archive) == "-XX:TieredStopAtLevel=1"  # no key: not known to be this JDK's
    (tmp_path / "classes.jsa.key").write_text("/old/jdk/bin/java pyspark 3.5.0")
    assert driver_options(jit, archive) == "-XX:TieredStopAtLevel=1"  # written for another JDK and pyspark
    (tmp_path / "classes.jsa.key").write_text(environment_key())
    # the configured options come last: a configured -Xlog is not undone by the archive's -Xlog:disable
    assert driver_options(jit, archive) == f"{mapped} -XX:TieredStopAtLevel=1"
    assert driver_options(SparkSettings(), archive) == mapped
    assert driver_options(SparkSettings(class_archive=False), archive) == ""


def test_the_driver_logs_with_the_packages_log4j2_file_unless_the_user_names_one(tmp_path, monkeypatch):
    monkeypatch.delenv("SPARK_CONF_DIR", raising=False)
    monkeypatch.delenv("SPARK_HOME", raising=False)  # the installed pyspark's conf folder, which has none
    mine = log_option(SparkSettings())
    assert mine == f"-Dlog4j2.configurationFile={LOG_CONFIG.as_uri()}" and LOG_CONFIG.is_file()
    assert "rootLogger.level = warn" in LOG_CONFIG.read_text()
    for name in ("log4j2", "log4j"):
        theirs = SparkSettings(conf={DRIVER_OPTIONS: f"-Xss4m -D{name}.configurationFile=file:/etc/spark/log4j2.xml"})
        assert log_option(theirs) == ""
    monkeypatch.setenv("SPARK_CONF_DIR", str(tmp_path))
    assert log_option(SparkSettings()) == mine  # a conf dir without a log4j2 file of its own
    (tmp_path / "log4j2.properties").write_text("rootLogger.level = info\n")
    assert log_option(SparkSettings()) == ""
    monkeypatch.delenv("SPARK_CONF_DIR")
    monkeypatch.setenv("SPARK_HOME", str(tmp_path / "home"))  # Spark's default folder: $SPARK_HOME/conf
    assert log_option(SparkSettings()) == mine
    (tmp_path / "home" / "conf").mkdir(parents=True)
    (tmp_path / "home" / "conf" / "log4j2.properties").write_text("rootLogger.level = info\n")
    assert log_option(SparkSettings()) == ""


def test_a_configured_xlog_still_logs_and_cds_warnings_stay_off_stdout_where_the_archive_is_mapped(tmp_path):
    """A real JVM started with the driver's options: the archive's `-Xlog:disable` (which resets logging
    set up before it) must not undo a configured `-Xlog`, and the warning for an archive it cannot map goes
    to stderr (a job's stdout is its report). The environment's own archive, which a bare `java` without
    Spark's class path cannot map: it says so, as a warning."""
    log = tmp_path / "gc.log"
    opts = driver_options(SparkSettings(conf={DRIVER_OPTIONS: f"-Xlog:gc*:file={log}"}))
    assert f"-XX:SharedArchiveFile={CLASS_ARCHIVE}" in opts, "make setup writes the archive and its key"
    r = subprocess.run(["java", *opts.split(), "-version"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert log.stat().st_size > 0, opts  # the configured gc log was written
    assert "shared archive" in r.stderr.lower() and "shared archive" not in r.stdout.lower()


@pytest.mark.slow  # a JVM started and killed as its own process group
def test_writing_the_class_archive_past_its_time_limit_leaves_no_file_and_no_jvm(tmp_path):
    def jvms() -> str:
        return subprocess.run(["pgrep", "-f", f"ArchiveClassesAtExit={tmp_path}"], capture_output=True,
                              text=True).stdout

    # every file that appears while write() runs: a JVM that outlived its time limit and dumped its archive
    # (~170 MB here: far longer to write than one 20 ms poll) shows here even where write() removed it after
    seen: set[str] = set()
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            seen.update(p.name for p in tmp_path.iterdir())
            time.sleep(0.02)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        with pytest.raises(subprocess.TimeoutExpired):
            write(tmp_path / "classes.jsa", timeout=6)  # the workload's JVM is up by then, nowhere near its dump
    finally:
        done.set()
        watcher.join()
    assert seen == set()  # killed with its process group at the limit: it never began its dump
    deadline = time.time() + 5  # SIGKILL is delivered at once; a JVM still alive after this was left behind
    while jvms() and time.time() < deadline:
        time.sleep(0.1)
    assert jvms() == ""  # so no JVM can dump its archive later, when its parent's pipes close
    assert list(tmp_path.iterdir()) == []


def test_the_session_jvm_starts_from_the_class_archive_that_make_setup_wrote(spark):
    assert CLASS_ARCHIVE.is_file(), f"make setup writes {CLASS_ARCHIVE} (python -m cytolake.engines.class_archive_writer)"
    jvm = spark.sparkContext._jvm
    args = list(jvm.java.lang.management.ManagementFactory.getRuntimeMXBean().getInputArguments())
    assert f"-XX:SharedArchiveFile={CLASS_ARCHIVE}" in args
    assert "-XX:TieredStopAtLevel=1" in args  # and the configured options stay


def test_spark_write_commits_once_whatever_the_task_count(spark, tmp_path):
    lake = Lake(tmp_path / "lake")
    v1 = write_dataframe(lake, "features", features_df(spark, parts=7), "append")
    assert v1 == 1  # version 0 is the empty table's creation
    v2 = write_dataframe(lake, "features", features_df(spark, n=300, parts=13).filter("id >= 120"), "append")
    assert v2 == v1 + 1
    assert DeltaTable(str(lake.path("features"))).to_pyarrow_table().num_rows == 300
    # every data file in the folder is committed: nothing stray, nothing missing
    assert parquet_files(lake.path("features")) == committed_files(lake, "features")


def test_a_write_leaves_the_callers_spark_job_group_as_it_was(spark, tmp_path):
    """The write runs in a job group of its own (to cancel its tasks on failure); the caller's comes back."""
    sc, lake = spark.sparkContext, Lake(tmp_path / "lake")
    sc.setJobGroup("caller", "the caller's jobs")
    try:
        write_dataframe(lake, "features", features_df(spark), "append")
        assert sc.getLocalProperty("spark.jobGroup.id") == "caller"
        assert sc.getLocalProperty("spark.job.description") == "the caller's jobs"
    finally:
        for k in ("spark.jobGroup.id", "spark.job.description", "spark.job.interruptOnCancel"):
            sc.setLocalProperty(k, None)
    write_dataframe(lake, "features", features_df(spark, n=10), "overwrite")
    assert sc.getLocalProperty("spark.jobGroup.id") is None


def test_empty_append_commits_nothing(spark, tmp_path):
    lake = Lake(tmp_path / "lake")
    v = write_dataframe(lake, "features", features_df(spark), "append")
    assert write_dataframe(lake, "features", features_df(spark).filter("id < 0"), "append") is None
    assert lake.version("features") == v


def test_task_failure_mid_write_leaves_table_and_folder_as_they_were(spark, tmp_path):
    lake = Lake(tmp_path / "lake")
    v = write_dataframe(lake, "features", features_df(spark), "append")
    before = parquet_files(lake.path("features"))

    @F.udf("string")
    def boom(pid):
        if pid == "p00100":  # one task fails after the others wrote their files
            raise RuntimeError("disk on fire")
        return pid

    bad = features_df(spark, n=200, parts=8).withColumn("patch_id", boom("patch_id"))
    with pytest.raises(Exception, match="disk on fire"):
        write_dataframe(lake, "features", bad, "append")
    assert lake.version("features") == v
    assert lake.read("features").num_rows == 120
    assert parquet_files(lake.path("features")) == before


def test_replace_partitions_touches_only_those_brains(spark, tmp_path):
    lake = Lake(tmp_path / "lake")
    write_dataframe(lake, "features", features_df(spark), "append")
    write_dataframe(lake, "features", features_df(spark, n=6, brains=("B01",)).withColumn("model_version", F.lit("m2")),
                    "append")
    untouched = {f for f in parquet_files(lake.path("features"))
                 if f.startswith(("model_version=m1/brain_id=B02/", "model_version=m2/brain_id=B01/"))}
    assert len(untouched) >= 2
    new = features_df(spark, n=9, parts=3, brains=("B01",)).withColumn("content_hash", F.lit("c2"))
    v = write_dataframe(lake, "features", new, "replace_partitions", {"model_version": ["m1"], "brain_id": ["B01"]})
    t = lake.read("features").to_pandas()
    m1 = t[t.model_version == "m1"]
    assert sorted(m1.groupby("brain_id").size().items()) == [("B01", 9), ("B02", 40), ("B03", 40)]
    assert set(m1[m1.brain_id == "B01"].content_hash) == {"c2"}
    assert len(t[t.model_version == "m2"]) == 6
    assert untouched <= committed_files(lake, "features")
    assert lake.version("features") == v


def test_spark_read_matches_independent_readers(spark, tmp_path):
    lake = Lake(tmp_path / "lake")
    write_dataframe(lake, "features", features_df(spark, n=250, parts=5), "append")
    write_dataframe(lake, "features", features_df(spark, n=7, parts=2, brains=("B09",)), "append")
    df = read_dataframe(spark, lake, "features")
    spark_counts = {r["brain_id"]: r["count"] for r in df.groupBy("brain_id").count().collect()}
    arrow = DeltaTable(str(lake.path("features"))).to_pyarrow_table()  # delta-rs, no cytolake code
    duck = duckdb.connect()
    duck.register("f", arrow)
    duck_counts = dict(duck.sql("select brain_id, count(*) from f group by 1").fetchall())
    assert spark_counts == duck_counts == {"B01": 84, "B02": 83, "B03": 83, "B09": 7}
    assert df.schema.names == schema("features").names
    row = df.filter("patch_id = 'p00005'").collect()[0]
    assert row["brain_id"] == "B03" and list(row["embedding"]) == [5.0, 0.5]


def test_read_of_missing_table_is_empty_with_schema(spark, tmp_path):
    df = read_dataframe(spark, Lake(tmp_path / "lake"), "patches")
    assert df.count() == 0 and "image" in df.columns


def test_arrow_write_modes_and_merge(tmp_path):
    lake = Lake(tmp_path / "lake")
    from cytolake.schemas import schema

    rows = [{"brain_id": f"B{i}", "status": "ok", "manifest_uri": "m", "n_sections": i, "n_ok": i, "n_error": 0,
             "ingested_at": pa.scalar(0, pa.timestamp("us", tz="UTC")).as_py()} for i in range(3)]
    lake.write_arrow("brains", schema("brains").table(rows), "overwrite")
    v = lake.merge("brains", schema("brains").table([{**rows[1], "status": "error", "error": "x"},
                                                     {**rows[0], "brain_id": "B9"}]))
    t = {r["brain_id"]: r for r in lake.read("brains").to_pylist()}
    assert sorted(t) == ["B0", "B1", "B2", "B9"] and t["B1"]["status"] == "error" and v == 2
    assert [s["rows"] for s in lake.stats() if s["table"] == "brains"] == [4]


def test_maintain_compacts_keeps_time_travel_within_retention_and_is_idempotent(tmp_path):
    from cytolake.lake.maintain import maintain

    lake = Lake(tmp_path / "lake")
    ts = schema("metrics")
    for i in range(6):  # six small appends: six small files
        lake.write_arrow("metrics", ts.table([{"run_id": f"r{i}", "model_version": "m", "stage": "s", "split": "test",
                                               "metric": "macro_f1", "value": i / 10,
                                               "recorded_at": datetime(2026, 1, 1, tzinfo=timezone.utc)}]), "append")
    rows = lake.read("metrics").sort_by("run_id").to_pylist()
    v = lake.version("metrics")
    old = DeltaTable(str(lake.path("metrics")), version=2).to_pyarrow_table().num_rows
    [r] = [r for r in maintain(lake, retention_days=7, target_file_mb=64, log=lambda *a: None) if r["table"] == "metrics"]
    assert r["files_before"] > 1 and r["files_after"] == 1 and r["version"] == v + 1
    assert lake.read("metrics").sort_by("run_id").to_pylist() == rows
    # within the retention the removed files stay on disk: time travel still reads version 2
    assert DeltaTable(str(lake.path("metrics")), version=2).to_pyarrow_table().num_rows == old
    again = maintain(lake, retention_days=7, target_file_mb=64, log=lambda *a: None)
    assert [r["version"] for r in again if r["table"] == "metrics"] == [v + 1]  # nothing left to do: no commit
    maintain(lake, retention_days=0, target_file_mb=64, log=lambda *a: None)
    assert parquet_files(lake.path("metrics")) == committed_files(lake, "metrics")  # old files gone at 0 days
    assert lake.read("metrics").sort_by("run_id").to_pylist() == rows
