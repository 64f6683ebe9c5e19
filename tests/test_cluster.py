"""The jobs on a real Spark standalone cluster: a master and a worker started as their own processes with
pyspark's `spark-class` on 127.0.0.1, and ingest, tile and embed submitted to it with `spark-submit`."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest

from cytolake.lake import Lake
from cytolake.lake.class_archive import archive_option

from conftest import ROOT, settings_at, write_config

pytestmark = pytest.mark.slow
# every JVM here (master, worker, drivers, executors) lives seconds: the JIT's quick tier costs less CPU than
# C2, and the environment's class-data archive saves loading Spark's classes (where it matches: the JVM decides)
JIT = f"-XX:TieredStopAtLevel=1 -XX:+UseSerialGC {archive_option()}".strip()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _spark_home() -> Path:
    import pyspark

    return Path(pyspark.__file__).parent


def _stop(procs: list[subprocess.Popen]) -> None:
    """TERM each daemon's process group (the JVM and anything it started), KILL what is left after 20 s."""
    for p in procs:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()


def _alive_workers(ui_port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{ui_port}/json/", timeout=5) as r:
            return sum(w["state"] == "ALIVE" for w in json.load(r)["workers"])
    except OSError:
        return 0


@contextmanager
def standalone_cluster(base: Path, env: dict):
    """`spark://127.0.0.1:PORT` of a master and a 1-core worker; both are stopped on the way out, whatever happens."""
    port, ui, worker_ui = _free_port(), _free_port(), _free_port()
    spark_class = str(_spark_home() / "bin" / "spark-class")
    url = f"spark://127.0.0.1:{port}"
    procs: list[subprocess.Popen] = []
    try:
        for name, args in (("master", ["org.apache.spark.deploy.master.Master", "--host", "127.0.0.1", "--port", str(port),
                                       "--webui-port", str(ui)]),
                           ("worker", ["org.apache.spark.deploy.worker.Worker", "--host", "127.0.0.1", "--cores", "1",
                                       "--memory", "1536m", "--webui-port", str(worker_ui), "--work-dir",
                                       str(base / "work"), url])):
            log = open(base / f"{name}.log", "w")
            procs.append(subprocess.Popen([spark_class, *args], env=env, stdout=log, stderr=subprocess.STDOUT,
                                          start_new_session=True))
        deadline = time.monotonic() + 180
        while _alive_workers(ui) < 1:
            if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                raise RuntimeError("the standalone cluster did not come up:\n"
                                   + "\n".join((base / f"{n}.log").read_text()[-3000:] for n in ("master", "worker")))
            time.sleep(1)
        yield url, ui
    finally:
        _stop(procs)


def test_ingest_tile_embed_submitted_to_a_standalone_cluster(tmp_path, synth_landing, tiled_lake, atlas_lake):
    shutil.copytree(synth_landing, tmp_path / "landing")
    cfg = settings_at(tmp_path)
    shutil.copytree(atlas_lake, cfg.paths.lake)  # the atlas is registered on the driver: not what this test is about
    conf = str(write_config(cfg, tmp_path / "cluster.yaml"))
    env = {**os.environ, "PYTHONPATH": str(ROOT / "lib"), "PYSPARK_PYTHON": sys.executable,
           "PYSPARK_DRIVER_PYTHON": sys.executable, "SPARK_HOME": str(_spark_home()), "SPARK_LOCAL_IP": "127.0.0.1",
           "SPARK_LOG_DIR": str(tmp_path / "logs"), "SPARK_WORKER_DIR": str(tmp_path / "work"),
           "SPARK_DAEMON_JAVA_OPTS": JIT}
    (tmp_path / "work").mkdir()
    with standalone_cluster(tmp_path, env) as (url, ui):
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
    apps_run = sorted(p.name for p in (tmp_path / "work").iterdir() if p.name.startswith("app-"))
    assert len(apps_run) == 3 and all(list((tmp_path / "work" / a).glob("*/stderr")) for a in apps_run)
    # ... with the results of a local[*] run of the same landing
    lake, local = Lake(cfg.paths.lake), Lake(tiled_lake.paths.lake)
    assert {r["status"] for r in lake.read("sections").to_pylist()} == {"ok"}
    mine = {r["patch_id"]: r for r in lake.read("patches", ["patch_id", "ref_xyz", "pmap", "image"]).to_pylist()}
    theirs = {r["patch_id"]: r for r in local.read("patches", ["patch_id", "ref_xyz", "pmap", "image"]).to_pylist()}
    assert mine.keys() == theirs.keys() and len(mine) > 100
    assert all(mine[k] == theirs[k] for k in mine)
    feats = lake.read("features", ["patch_id", "model_version"])
    assert sorted(feats["patch_id"].to_pylist()) == sorted(mine) and set(feats["model_version"].to_pylist()) == {"random-init"}
