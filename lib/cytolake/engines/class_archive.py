"""The environment's class-data archive for Spark's JVM: where it lives, what it is valid for, and the driver
options that map it, so that a job's driver starts sooner.

A Spark driver loads and verifies some ten thousand classes before its first job. A dynamic CDS archive
(JDK 13+, `-XX:ArchiveClassesAtExit`) holds them already parsed and verified; a JVM started with
`-XX:SharedArchiveFile` maps it instead (benchmarks/results/jvm_start.md, "JVM class-data archive"). The
archive belongs to the environment (it is valid for exactly this JDK and these Spark jars), so it lives in the
virtual environment, written once by `make setup` (`python -m cytolake.engines.class_archive_writer`), with a
key file naming the JDK and pyspark it was written for: after an upgrade of either, jobs start without it
until it is written again. A JVM that cannot map it starts anyway (`-Xshare:auto`), but a damaged file also
turns off the JDK's own default archive (slower than no option), so the archive is only ever replaced whole
(written aside, renamed).
"""

from __future__ import annotations

import os
import sys
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


def key_file(archive: Path) -> Path:
    return archive.with_name(archive.name + ".key")


def archive_option(archive: Path = CLASS_ARCHIVE) -> str:
    """The JVM options that map the archive, or "" where there is none or it was written for another JDK
    or pyspark (any JVM of this environment: a driver, and the daemons and executors of a standalone cluster
    on this machine). The JVM's own messages (CDS warnings included) go to stderr, never into a job's stdout:
    options after these may add their own `-Xlog` (the disable here only resets the JVM's default)."""
    key = key_file(archive)
    if not (archive.is_file() and key.is_file() and key.read_text() == environment_key()):
        return ""
    return f"-Xlog:disable -Xlog:all=warning:stderr -XX:SharedArchiveFile={archive}"


def driver_options(settings: SparkSettings, archive: Path = CLASS_ARCHIVE) -> str:
    """The driver JVM's options for the archive: the class-data archive's where `spark.class_archive` asks for
    it, then those configured (`spark.conf`), so that a configured `-Xlog` or archive of one's own wins
    (`engines.spark.spark_session` puts the log configuration's option before these)."""
    configured = settings.conf.get(DRIVER_OPTIONS, "")
    return f"{archive_option(archive) if settings.class_archive else ''} {configured}".strip()
