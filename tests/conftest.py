"""Shared fixtures: a real local Spark session, and a tiny synthetic landing (real BigTIFFs on the real Juelich maps)."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest

from cytolake.config import Paths, Settings, load_config
from cytolake.ingest.job import run_ingest
from cytolake.lake import Lake

ROOT = Path(__file__).resolve().parents[1]


def settings_at(base: Path, landing: Path | None = None) -> Settings:
    """conf/test.yaml with every path under `base` (and the landing folder given, if any)."""
    cfg = load_config(ROOT / "conf" / "test.yaml")
    paths = Paths(lake=base / "lake", landing=landing or base / "landing", models=base / "models", reports=base / "reports")
    return cfg.model_copy(update={"paths": paths})


@pytest.fixture(scope="session")
def spark():
    from cytolake.lake.spark import spark_session

    s = spark_session(load_config(ROOT / "conf" / "test.yaml").spark)
    yield s
    s.stop()


@pytest.fixture(scope="session")
def synth_landing(tmp_path_factory) -> Path:
    """Two tiny synthetic brains, written once per test session. Copy before changing anything in it."""
    from cytolake.synth.job import run_synthesize

    base = tmp_path_factory.mktemp("synth")
    run_synthesize(settings_at(base), log=lambda *a: None)
    return base / "landing"


@pytest.fixture
def landing(synth_landing, tmp_path) -> Path:
    """A private copy of the synthetic landing folder that a test may damage."""
    dst = tmp_path / "landing"
    shutil.copytree(synth_landing, dst)
    return dst


@pytest.fixture
def cfg(tmp_path, landing) -> Settings:
    return settings_at(tmp_path, landing)


@pytest.fixture(scope="module")
def tiled_lake(tmp_path_factory, synth_landing, spark) -> Settings:
    """Settings of a lake with the synthetic brains ingested and tiled, shared by one test module."""
    from cytolake.tiling.job import run_tile

    base = tmp_path_factory.mktemp("tiled")
    shutil.copytree(synth_landing, base / "landing")
    cfg = settings_at(base)
    run_ingest(cfg, spark, log=lambda *a: None)
    run_tile(cfg, spark, log=lambda *a: None)
    return cfg


def with_train(cfg, **kw):
    return cfg.model_copy(update={"train": cfg.train.model_copy(update=kw)})


def losses(model_dir: Path) -> dict[int, float]:
    rows = list(csv.DictReader(open(model_dir / "metrics.csv")))
    return {int(r["step"]): float(r["loss"]) for r in rows}  # a redone step keeps its last value


def write_config(cfg: Settings, path: Path) -> Path:
    """`cfg` as a YAML file, for a job run as its own process."""
    import yaml

    path.write_text(yaml.safe_dump(cfg.model_dump(mode="json", exclude={"source"})))
    return path


def ingest(cfg, spark):
    return run_ingest(cfg, spark, log=lambda *a: None)


def sections(cfg) -> dict:
    return {(r["brain_id"], r["section_id"]): r for r in Lake(cfg.paths.lake).read("sections").to_pylist()}


def edit_manifest(path: Path, section_id: int, **changes) -> None:
    rows = list(csv.DictReader(open(path, newline="")))
    for r in rows:
        if int(r["section_id"]) == section_id:
            r.update({k: str(v) for k, v in changes.items()})
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def versions(cfg) -> dict:
    lake = Lake(cfg.paths.lake)
    return {s["table"]: s["version"] for s in lake.stats()}
