"""Spark's launchers and a real standalone cluster: `spark-submit` from the venv without activating it, and a
master and a worker started by `cytolake cluster start` (pyspark's `spark-class` on 127.0.0.1) with ingest, tile
and embed submitted to it with `spark-submit`, then `cytolake cluster stop`."""

import json
import os
import shutil
import subprocess
import sys
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest

from cytolake.cli import main
from cytolake.cluster import running, alive_workers, read_cluster, write_find_spark_home
from cytolake.engines.class_archive import archive_option
from cytolake.lake import Lake

from conftest import ROOT, settings_at, write_config

# every JVM here (master, worker, drivers, executors) lives seconds: the JIT's quick tier costs less CPU than
# C2, and the environment's class-data archive saves loading Spark's classes (where it matches: the JVM decides)
JIT = f"-XX:TieredStopAtLevel=1 -XX:+UseSerialGC {archive_option()}".strip()


def _spark_home() -> Path:
    import pyspark

    return Path(pyspark.__file__).parent


@contextmanager
def standalone_cluster(base: Path, conf: str):
    """`cytolake cluster start` on 127.0.0.1 (a free port): (master URL, web UI port); stopped on the way out
    with `cytolake cluster stop`, whatever happens, and every daemon it started found gone."""
    state = base / "standalone"
    assert main(["--config", conf, "cluster", "start", "--port", "0", "--dir", str(state)]) == 0
    c = read_cluster(state)
    try:
        assert alive_workers(c.ui_port) == 1
        yield c.url, c.ui_port
    finally:
        assert main(["--config", conf, "cluster", "stop", "--dir", str(state)]) == 0
        assert read_cluster(state) is None and not any(running(p) for p in c.pids)


@pytest.mark.slow
def test_ingest_tile_embed_submitted_to_a_standalone_cluster(tmp_path, synth_landing, tiled_lake, atlas_lake,
                                                             monkeypatch):
    shutil.copytree(synth_landing, tmp_path / "landing")
    cfg = settings_at(tmp_path)
    shutil.copytree(atlas_lake, cfg.paths.lake)  # the atlas is registered on the driver: not what this test is about
    conf = str(write_config(cfg, tmp_path / "cluster.yaml"))
    env = {**os.environ, "PYTHONPATH": str(ROOT / "lib"), "PYSPARK_PYTHON": sys.executable,
           "PYSPARK_DRIVER_PYTHON": sys.executable, "SPARK_HOME": str(_spark_home()), "SPARK_LOCAL_IP": "127.0.0.1"}
    monkeypatch.setenv("SPARK_DAEMON_JAVA_OPTS", JIT)  # `cluster start` adds the class-data archive's option
    with standalone_cluster(tmp_path, conf) as (url, ui):
        for job, *args in (("ingest",), ("tile",), ("embed", "--model", "random-init")):
            r = subprocess.run([str(_spark_home() / "bin" / "spark-submit"), "--master", url, "--driver-memory", "1g",
                                "--conf", "spark.executor.memory=1g", "--conf", "spark.executor.cores=1",
                                "--conf", f"spark.driver.extraJavaOptions={JIT}",
                                "--conf", f"spark.executor.extraJavaOptions={JIT}",
                                str(ROOT / "jobs" / f"{job}.py"), "--config", conf, *args],
                               cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
            assert r.returncode == 0, f"{job}: exit {r.returncode}\n{r.stdout[-3000:]}\n{r.stderr[-5000:]}"
        with urllib.request.urlopen(f"http://127.0.0.1:{ui}/json/", timeout=5) as resp:
            apps = json.load(resp)["completedapps"]
    # each job was an application of this cluster, and its tasks ran in executors on the worker
    assert len(apps) == 3
    work = tmp_path / "standalone" / "work"
    apps_run = sorted(p.name for p in work.iterdir() if p.name.startswith("app-"))
    assert len(apps_run) == 3 and all(list((work / a).glob("*/stderr")) for a in apps_run)
    # ... with the results of a local[*] run of the same landing
    lake, local = Lake(cfg.paths.lake), Lake(tiled_lake.paths.lake)
    assert {r["status"] for r in lake.read("sections").to_pylist()} == {"ok"}
    mine = {r["patch_id"]: r for r in lake.read("patches", ["patch_id", "ref_xyz", "pmap", "image"]).to_pylist()}
    theirs = {r["patch_id"]: r for r in local.read("patches", ["patch_id", "ref_xyz", "pmap", "image"]).to_pylist()}
    assert mine.keys() == theirs.keys() and len(mine) > 100
    assert all(mine[k] == theirs[k] for k in mine)
    feats = lake.read("features", ["patch_id", "model_version"])
    assert sorted(feats["patch_id"].to_pylist()) == sorted(mine) and set(feats["model_version"].to_pylist()) == {"random-init"}


def test_spark_submit_runs_a_job_without_the_venv_activated(tmp_path):
    """pip's own `spark-submit` launcher beside the `find-spark-home` that `make setup` writes into .venv/bin,
    started with a PATH that has no venv on it (no activation, no SPARK_HOME): the job's Python is the venv's."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shutil.copy(Path(sys.prefix) / "bin" / "spark-submit", bin_dir)
    write_find_spark_home(bin_dir, Path(sys.executable))
    job = tmp_path / "job.py"
    job.write_text("import sys\nfrom pyspark.sql import SparkSession\n"
                   "s = SparkSession.builder.getOrCreate()\n"
                   "print('rows', s.range(7).count(), 'python', sys.prefix)\ns.stop()\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPARK_", "PYSPARK_", "VIRTUAL_ENV"))}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if not p.startswith(sys.prefix))
    r = subprocess.run([str(bin_dir / "spark-submit"), "--master", "local[1]", "--conf",
                        f"spark.driver.extraJavaOptions={JIT}", str(job)], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert f"rows 7 python {sys.prefix}" in r.stdout
