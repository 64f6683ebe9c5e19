"""The environment's class-data archive for Spark's JVM: how a job's driver starts ~3.5 s sooner.

A Spark driver loads and verifies some ten thousand classes before its first job. A dynamic CDS archive
(JDK 13+, `-XX:ArchiveClassesAtExit`) holds them already parsed and verified; a JVM started with
`-XX:SharedArchiveFile` maps it instead (figures: RESULTS.md, "JVM class-data archive"). The archive belongs to the environment
(it is valid for exactly this JDK and these Spark jars), so it lives in the virtual environment, written
once by `make setup` (`python -m cytolake.lake.class_archive`), with a key file naming the JDK and pyspark it
was written for: after an upgrade of either, jobs start without it until it is written again. A JVM that
cannot map it starts anyway (`-Xshare:auto`), but a damaged file also turns off the JDK's own default
archive (slower than no option), so the archive is only ever replaced whole (written aside, renamed).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from cytolake.config import SparkSettings

CLASS_ARCHIVE = Path(sys.prefix) / "spark-classes.jsa"
DRIVER_OPTIONS = "spark.driver.extraJavaOptions"


def environment_key() -> str:
    """What an archive is valid for: the JDK that `java` resolves to and the pyspark (its jars) installed."""
    import shutil

    import pyspark

    java = os.environ.get("JAVA_HOME") and Path(os.environ["JAVA_HOME"], "bin", "java")
    java = java or shutil.which("java") or "java"
    return f"{Path(java).resolve()} pyspark {pyspark.__version__}"


def _key_file(archive: Path) -> Path:
    return archive.with_name(archive.name + ".key")


def archive_option(archive: Path = CLASS_ARCHIVE) -> str:
    """The JVM options that map the archive, or "" where there is none or it was written for another JDK
    or pyspark (any JVM of this environment: a driver, and the daemons and executors of a standalone cluster
    on this machine). The JVM's own messages (CDS warnings included) go to stderr, never into a job's stdout:
    options after these may add their own `-Xlog` (the disable here only resets the JVM's default)."""
    key = _key_file(archive)
    if not (archive.is_file() and key.is_file() and key.read_text() == environment_key()):
        return ""
    return f"-Xlog:disable -Xlog:all=warning:stderr -XX:SharedArchiveFile={archive}"


def driver_options(settings: SparkSettings, archive: Path = CLASS_ARCHIVE) -> str:
    """The driver JVM's options for the archive: the class-data archive's where `spark.class_archive` asks for
    it, then those configured (`spark.conf`), so that a configured `-Xlog` or archive of one's own wins
    (`lake.spark.spark_session` puts the log configuration's option before these)."""
    configured = settings.conf.get(DRIVER_OPTIONS, "")
    return f"{archive_option(archive) if settings.class_archive else ''} {configured}".strip()


def _workload(out: Path) -> None:
    """A driver doing what the jobs do, so that their classes are archived: Arrow in and out, a Python
    task over Arrow batches, Parquet read, a join, an aggregation. The archive is written when the JVM exits."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from cytolake.lake.spark import spark_session

    settings = SparkSettings(master="local[1]", driver_memory="1g", shuffle_partitions=2, class_archive=False,
                             conf={DRIVER_OPTIONS: f"-XX:ArchiveClassesAtExit={out}"})
    spark = spark_session(settings)
    with tempfile.TemporaryDirectory() as tmp:
        pq.write_table(pa.table({"k": list(range(100)), "v": [float(i) for i in range(100)]}), f"{tmp}/t.parquet")
        left = spark.read.parquet(f"{tmp}/t.parquet")
        right = spark.createDataFrame(pa.table({"k": list(range(0, 100, 3)), "name": [str(i) for i in range(0, 100, 3)]}))

        def double(batches):
            for b in batches:
                yield pa.RecordBatch.from_arrays([b.column(0), pc.multiply(b.column(1), 2.0)], names=["k", "v"])

        joined = left.mapInArrow(double, "k long, v double").join(right, "k")
        joined.groupBy("name").agg({"v": "sum"}).toArrow()
        joined.orderBy("k").collect()
    spark.stop()


def write(path: Path = CLASS_ARCHIVE, timeout: float = 600) -> Path:
    """Write the archive to `path` (atomically: a half-written archive is never in place). Raises
    RuntimeError naming the cause when the JVM wrote none."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    # its own process group: on a timeout the JVM (a grandchild) is killed too, before it can dump at exit;
    # reading the pipes to their end also waits for the JVM to finish a dump it has begun
    proc = subprocess.Popen([sys.executable, "-m", "cytolake.lake.class_archive", "--workload", str(tmp)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        tmp.unlink(missing_ok=True)
        raise
    if proc.returncode != 0 or not tmp.is_file():
        tmp.unlink(missing_ok=True)
        raise RuntimeError(f"no class-data archive written (exit {proc.returncode}):\n{out[-2000:]}")
    _key_file(path).unlink(missing_ok=True)
    os.replace(tmp, path)
    _key_file(path).write_text(environment_key())
    return path


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--workload"]:
        _workload(Path(argv[1]))
        return 0
    try:
        print(f"Spark class-data archive: {write()}")
    except (RuntimeError, subprocess.TimeoutExpired) as e:
        print(f"warning: jobs will start without a class-data archive (only slower): {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
