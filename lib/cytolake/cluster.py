"""A Spark standalone cluster on this machine with nothing but pip's pyspark, and Spark's launchers in the venv
made to work without activating it.

pip's pyspark ships `bin/spark-class` but not the `sbin/start-*.sh` daemon scripts of a Spark download, so
`cytolake cluster start` runs the master and the workers with `spark-class` itself, as their own process
groups, and records them in a state folder; `cytolake cluster stop` ends exactly those. The tests' cluster
(`tests/test_cluster.py`) is started and stopped this way.

`python -m cytolake.cluster` (run by `make setup`) writes `.venv/bin/find-spark-home`, which every Spark
launcher in `.venv/bin` (`spark-submit`, `spark-class`, `pyspark`, ...) sources when `SPARK_HOME` is unset.
pip's version looks for pyspark with whatever `python3` is first on PATH, which is not the venv's unless it
is activated; ours names the installed pyspark folder, and the venv's python for the jobs' Python processes.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

MASTER, WORKER = "org.apache.spark.deploy.master.Master", "org.apache.spark.deploy.worker.Worker"
HOST = "127.0.0.1"


def spark_home() -> Path:
    """The installed pyspark folder: a whole SPARK_HOME (bin/, jars/) without sbin/."""
    import pyspark

    return Path(pyspark.__file__).resolve().parent


def find_spark_home_hook(python: Path | None = None) -> str:
    """The `find-spark-home` that Spark's launchers source: SPARK_HOME and the Python of this environment."""
    python = python or Path(sys.executable)
    return ("#!/usr/bin/env bash\n"
            "# Written by `make setup` (python -m cytolake.cluster) in place of pyspark's, which looks for pyspark\n"
            "# with the first python3 on PATH. Sourced by spark-submit, spark-class, pyspark, ... when SPARK_HOME\n"
            "# is unset: this environment's pyspark, and its python for the driver and executors.\n"
            f'export SPARK_HOME="{spark_home()}"\n'
            f'export PYSPARK_PYTHON="${{PYSPARK_PYTHON:-{python}}}"\n')


def write_find_spark_home(bin_dir: Path | None = None, python: Path | None = None) -> Path:
    """Replace `bin_dir/find-spark-home` (default: this environment's bin/) with ours, atomically."""
    bin_dir = bin_dir or Path(sys.prefix) / "bin"
    path = bin_dir / "find-spark-home"
    tmp = path.with_name(path.name + ".part")
    tmp.write_text(find_spark_home_hook(python or bin_dir / "python"))
    tmp.chmod(0o755)
    os.replace(tmp, path)
    return path


@dataclass(frozen=True)
class Cluster:
    """A running standalone cluster as `cluster start` recorded it."""
    url: str  # spark://127.0.0.1:PORT
    ui_port: int
    pids: list[int]  # the master's, then each worker's process (each leads its own process group)
    folder: str  # logs, work dirs and this record

    @property
    def ui(self) -> str:
        return f"http://{HOST}:{self.ui_port}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _record(folder: Path) -> Path:
    return folder / "cluster.json"


def read_cluster(folder: Path) -> Cluster | None:
    """The cluster recorded in `folder`, or None when none was started there (or it was stopped)."""
    path = _record(folder)
    return Cluster(**json.loads(path.read_text())) if path.is_file() else None


def alive_workers(ui_port: int) -> int:
    """Workers the master lists as ALIVE (its web UI's JSON); 0 while the master is not answering."""
    try:
        with urllib.request.urlopen(f"http://{HOST}:{ui_port}/json/", timeout=5) as r:
            return sum(w["state"] == "ALIVE" for w in json.load(r)["workers"])
    except OSError:
        return 0


def daemon_env(folder: Path, java_options: str = "") -> dict[str, str]:
    """The environment of the daemons and of the jobs submitted to them: this environment's pyspark and python,
    the package's lib/ on PYTHONPATH (executors import cytolake), everything on 127.0.0.1."""
    lib = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "SPARK_HOME": str(spark_home()), "PYSPARK_PYTHON": sys.executable,
           "PYSPARK_DRIVER_PYTHON": sys.executable, "SPARK_LOCAL_IP": HOST,
           "PYTHONPATH": os.pathsep.join(p for p in (lib, os.environ.get("PYTHONPATH", "")) if p),
           "SPARK_LOG_DIR": str(folder / "logs"), "SPARK_WORKER_DIR": str(folder / "work")}
    options = f"{os.environ.get('SPARK_DAEMON_JAVA_OPTS', '')} {java_options}".strip()
    if options:
        env["SPARK_DAEMON_JAVA_OPTS"] = options
    return env


def start_cluster(folder: Path, workers: int = 1, cores: int = 1, memory: str = "1536m", port: int = 0,
                  java_options: str = "", timeout_s: float = 180, log=print) -> Cluster:
    """Start a master and `workers` workers on 127.0.0.1 (a port of 0 picks a free one), wait until every
    worker is ALIVE, and record them in `folder/cluster.json`. Refuses when a cluster recorded there still runs;
    stops what it started when the cluster does not come up, with the end of each daemon's log in the error."""
    folder.mkdir(parents=True, exist_ok=True)
    old = read_cluster(folder)
    if old and any(running(p) for p in old.pids):
        raise RuntimeError(f"a cluster recorded in {_record(folder)} is running ({old.url}); "
                           "`cytolake cluster stop` ends it")
    (folder / "work").mkdir(exist_ok=True)
    port, ui = port or _free_port(), _free_port()
    url = f"spark://{HOST}:{port}"
    env = daemon_env(folder, java_options)
    daemons = [("master", [MASTER, "--host", HOST, "--port", str(port), "--webui-port", str(ui)])]
    daemons += [(f"worker-{i + 1}", [WORKER, "--host", HOST, "--cores", str(cores), "--memory", memory,
                                     "--webui-port", str(_free_port()), "--work-dir", str(folder / "work"), url])
                for i in range(workers)]
    procs = []
    for name, args in daemons:
        with open(folder / f"{name}.log", "w") as out:
            procs.append(subprocess.Popen([str(spark_home() / "bin" / "spark-class"), *args], env=env, stdout=out,
                                          stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True))
    cluster = Cluster(url, ui, [p.pid for p in procs], str(folder))
    log(f"starting a master and {workers} worker(s) at {url} (logs: {folder})")
    deadline = time.monotonic() + timeout_s
    while alive_workers(ui) < workers:
        if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
            _stop(cluster.pids)
            tails = "\n".join(f"--- {n}.log\n" + (folder / f"{n}.log").read_text()[-3000:] for n, _ in daemons)
            raise RuntimeError(f"the standalone cluster did not come up within {timeout_s:.0f} s:\n{tails}")
        time.sleep(1)
    _record(folder).write_text(json.dumps(asdict(cluster)))
    return cluster


def running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _stop(pids: list[int], grace_s: float = 20) -> None:
    """TERM each daemon's process group (the JVM and whatever it started), KILL what is left after `grace_s`."""
    for pid in pids:
        try:
            os.killpg(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + grace_s
    for pid in pids:
        while _reap(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if _reap(pid):
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def _reap(pid: int) -> bool:
    """True while `pid` runs; collects its exit status when it is our own child that ended."""
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done:
            return False
    except ChildProcessError:
        pass
    return running(pid)


def stop_cluster(folder: Path) -> Cluster | None:
    """Stop the cluster recorded in `folder` and remove its record; None when there was none."""
    cluster = read_cluster(folder)
    if cluster is None:
        return None
    _stop(cluster.pids)
    _record(folder).unlink()
    return cluster


def main(argv: list[str] | None = None) -> int:
    path = write_find_spark_home()
    print(f"wrote {path} (SPARK_HOME {spark_home()})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
