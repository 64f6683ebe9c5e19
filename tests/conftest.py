"""Shared fixtures: a real local Spark session, and a tiny synthetic landing (real BigTIFFs on the real Juelich maps)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from cytolake.config import Paths, Settings, load_config

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
