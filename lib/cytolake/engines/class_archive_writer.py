"""Writes the environment's class-data archive (`engines/class_archive.py` says what it is and how jobs map
it): a driver runs a small workload like the jobs' with `-XX:ArchiveClassesAtExit`, in a process of its own,
and the archive is put in place whole, with its key file. `make setup` runs it:
`python -m cytolake.engines.class_archive_writer`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from cytolake.config import SparkSettings
from cytolake.engines.class_archive import CLASS_ARCHIVE, DRIVER_OPTIONS, environment_key, key_file
from cytolake.engines.spark import spark_session


def _workload(out: Path) -> None:
    """A driver doing what the jobs do, so that their classes are archived: Arrow in and out, a Python
    task over Arrow batches, Parquet read, a join, an aggregation. The archive is written when the JVM exits."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

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
    proc = subprocess.Popen([sys.executable, "-m", "cytolake.engines.class_archive_writer", "--workload", str(tmp)],
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
    key_file(path).unlink(missing_ok=True)
    os.replace(tmp, path)
    key_file(path).write_text(environment_key())
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
