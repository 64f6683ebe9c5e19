"""A tiling job killed with SIGKILL after its tasks wrote their files and before it committed them: every
table stays at its previous version with nothing partial visible, a rerun ends exactly where an
uninterrupted run ends, and `cytolake maintain` clears the dead run's files."""

import os
import signal
import subprocess
import sys
import time

import pyarrow as pa
import pytest
from deltalake import DeltaTable

from cytolake.cli import main as cytolake
from cytolake.engines.spark import read_dataframe
from cytolake.ingest.job import run_ingest
from cytolake.lake import Lake
from cytolake.lake.lock import lake_lock
from cytolake.schemas import table_names
from cytolake.tiling.job import run_tile

from conftest import ROOT, quiet, write_config

pytestmark = pytest.mark.slow  # the tiling job runs (and is killed) as its own process


def patch_rows(lake: Lake) -> list[dict]:
    return lake.read("patches").sort_by("patch_id").to_pylist()


def committed(lake: Lake, table: str) -> set[str]:
    return set(pa.table(DeltaTable(str(lake.path(table))).get_add_actions(flatten=True))["path"].to_pylist())


@pytest.mark.usefixtures("with_atlas")
def test_tiling_killed_before_its_commit_changes_nothing_and_a_rerun_completes(cfg, spark, tmp_path,
                                                                              tiled_session):
    run_ingest(cfg, spark, log=quiet)
    run_tile(cfg, spark, ["B01"], log=quiet)  # something already in the lake that must survive
    lake = Lake(cfg.paths.lake)
    want = patch_rows(Lake(tiled_session.paths.lake))  # an uninterrupted run over both brains (a copy of this landing)
    assert {r["brain_id"] for r in want} == {"B01", "B02"}

    versions = {t: lake.version(t) for t in table_names()}
    b01 = patch_rows(lake)
    b01_files = committed(lake, "patches")
    conf = write_config(cfg, tmp_path / "conf.yaml")
    marker = tmp_path / "written"
    tile = [sys.executable, str(ROOT / "jobs" / "tile.py"), "--config", str(conf)]
    proc = subprocess.Popen([sys.executable, str(ROOT / "tests" / "helpers" / "pause_before_commit.py"),
                             str(marker), "patches", *tile[1:]],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.time() + 300
    while not marker.exists():
        assert proc.poll() is None, proc.stdout.read().decode()[-3000:]
        assert time.time() < deadline, "the tiling job never reached its commit"
        time.sleep(0.2)
    time.sleep(0.2)  # the marker is written in one call; let it land
    written = marker.read_text().split()
    assert written and all((lake.path("patches") / p).is_file() for p in written)  # the files are on disk ...
    os.killpg(proc.pid, signal.SIGKILL)  # ... the driver, its JVM and its Python workers die here
    proc.wait()

    lake = Lake(cfg.paths.lake)
    assert {t: lake.version(t) for t in table_names()} == versions
    assert patch_rows(lake) == b01 and committed(lake, "patches") == b01_files  # ... and none of them is visible
    assert read_dataframe(spark, lake, "patches").count() == len(b01)

    with lake_lock(cfg.paths.lake, "rerun"):  # the killed job's lock died with it: taken at once, no wait
        run_tile(cfg, spark, log=quiet)  # (in this process, saving a JVM start)
    assert patch_rows(Lake(cfg.paths.lake)) == want
    assert all((lake.path("patches") / p).is_file() for p in written)  # the dead run's files: invisible, still there

    assert cytolake(["--config", str(conf), "maintain", "--retention-days", "0"]) == 0
    assert not any((lake.path("patches") / p).exists() for p in written)
    assert patch_rows(Lake(cfg.paths.lake)) == want  # compaction rewrote files, not rows
    assert read_dataframe(spark, Lake(cfg.paths.lake), "patches").count() == len(want)  # Spark reads them too
    files = committed(Lake(cfg.paths.lake), "patches")
    on_disk = {str(p.relative_to(lake.path("patches"))) for p in lake.path("patches").rglob("*.parquet")}
    assert on_disk == files
