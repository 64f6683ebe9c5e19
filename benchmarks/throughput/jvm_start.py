"""How much sooner a job's Spark driver starts from the environment's class-data archive.

Alternates fresh processes (in ABBA order, so that neither side always runs first) that start a local session (`spark_session`, the configured JVM options) and run
a first small job (1,000 rows grouped and collected), with the archive (`spark.class_archive: true`) and
without it; the baseline is the same start without the archive, taken in the same run. Prints each start
and the ratio of the medians (with / without).

    .venv/bin/python -m benchmarks.throughput.jvm_start [--config conf/test.yaml] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

ONE_START = """
import json, sys, time
t0 = time.perf_counter()
from cytolake.config import load_config
from cytolake.engines.spark import spark_session
cfg = load_config(sys.argv[1])
spark = spark_session(cfg.spark.model_copy(update={"class_archive": sys.argv[2] == "on"}))
t1 = time.perf_counter()
spark.range(1000).selectExpr("id % 7 as k").groupBy("k").count().collect()
t2 = time.perf_counter()
spark.stop()
print(json.dumps({"session_s": t1 - t0, "first_job_s": t2 - t1}))
"""


def one_start(config: str, archive: bool) -> dict:
    r = subprocess.run([sys.executable, "-c", ONE_START, config, "on" if archive else "off"],
                       capture_output=True, text=True, timeout=300, check=True)
    return json.loads(r.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="conf/test.yaml")
    p.add_argument("--runs", type=int, default=3)
    a = p.parse_args(argv)
    from cytolake.engines.class_archive import CLASS_ARCHIVE, archive_option

    if not archive_option():
        print(f"no archive for this JDK and pyspark at {CLASS_ARCHIVE}: run make setup "
              "(or python -m cytolake.engines.class_archive_writer)")
        return 1
    runs = {True: [], False: []}
    for i in range(a.runs):
        for archive in ((False, True) if i % 2 == 0 else (True, False)):
            r = one_start(a.config, archive)
            runs[archive].append(r["session_s"] + r["first_job_s"])
            print(f"archive {'on ' if archive else 'off'}: session {r['session_s']:.2f} s, first job {r['first_job_s']:.2f} s")
    on, off = statistics.median(runs[True]), statistics.median(runs[False])
    print(f"median session + first job: {on:.2f} s with the archive, {off:.2f} s without; ratio {on / off:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
