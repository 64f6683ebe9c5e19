"""Shared fixtures: a real local Spark session, and a tiny synthetic landing (real BigTIFFs on the real Juelich maps)."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from scipy.ndimage import map_coordinates

from cytolake.atlas.pmaps import Atlas
from cytolake.config import Paths, Settings, load_config
from cytolake.ingest.job import run_ingest
from cytolake.lake import Lake
from cytolake.train.model import RANDOM_INIT

ROOT = Path(__file__).resolve().parents[1]


def settings_at(base: Path, landing: Path | None = None) -> Settings:
    """conf/test.yaml with every path under `base` (and the landing folder given, if any)."""
    cfg = load_config(ROOT / "conf" / "test.yaml")
    paths = Paths(lake=base / "lake", landing=landing or base / "landing", models=base / "models", reports=base / "reports")
    return cfg.model_copy(update={"paths": paths})


@pytest.fixture(scope="session")
def spark():
    from cytolake.engines.spark import spark_session

    s = spark_session(load_config(ROOT / "conf" / "test.yaml").spark)
    yield s
    s.stop()


@pytest.fixture(scope="session")
def synth_landing(tmp_path_factory) -> Path:
    """Two tiny synthetic brains, written once per test session. Copy before changing anything in it."""
    from cytolake.synth.job import run_synthesize

    base = tmp_path_factory.mktemp("synth")
    run_synthesize(settings_at(base), workers=1, log=quiet)  # sections this small: a process pool costs more
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


@pytest.fixture(scope="session")
def atlas_lake(tmp_path_factory, spark) -> Path:
    """A lake holding only the registered atlas (`areas` and the ~1M-row `pmaps`), written once per session.
    A test that is not about registering the atlas starts from a copy of this lake (`with_atlas`), and its
    ingest then registers only the brains."""
    base = tmp_path_factory.mktemp("atlas")
    (base / "landing").mkdir()
    run_ingest(settings_at(base), spark, log=quiet)
    return base / "lake"


@pytest.fixture
def with_atlas(cfg, atlas_lake) -> Settings:
    """`cfg`, its lake a copy of `atlas_lake` (a real Delta lake on disk): the atlas already registered."""
    shutil.copytree(atlas_lake, cfg.paths.lake)
    return cfg


@pytest.fixture(scope="session")
def tiled_session(tmp_path_factory, synth_landing, atlas_lake, spark) -> Settings:
    """The synthetic brains ingested and tiled once per session. Tests use copies of its lake (`tiled_lake`,
    `tiled_copy`); the landing folder those copies name is this one's, shared: never change it."""
    from cytolake.tiling.job import run_tile

    base = tmp_path_factory.mktemp("tiled")
    shutil.copytree(synth_landing, base / "landing")
    shutil.copytree(atlas_lake, base / "lake")
    cfg = settings_at(base)
    run_ingest(cfg, spark, log=quiet)
    run_tile(cfg, spark, log=quiet)
    return cfg


def copy_of(tiled: Settings, base: Path, models: bool = False) -> Settings:
    """A private copy of a lake under `base`, with its own models and reports folders (the models copied too
    if asked), on the same landing (section rows name their image files by absolute path)."""
    shutil.copytree(tiled.paths.lake, base / "lake")
    if models:
        shutil.copytree(tiled.paths.models, base / "models")
    return settings_at(base, tiled.paths.landing)


@pytest.fixture(scope="module")
def tiled_lake(tmp_path_factory, tiled_session) -> Settings:
    """Settings of a copy of the ingested and tiled lake, shared by one test module."""
    return copy_of(tiled_session, tmp_path_factory.mktemp("tiled"))


@pytest.fixture(scope="session")
def embedded(tmp_path_factory, tiled_session, spark):
    """A copy of the tiled lake with every patch embedded by the random-init encoder, once per session:
    (settings, the embed summary). Tests take copies (`copy_of(..., models=True)`: the encoder file's hash
    is what makes the embeddings current)."""
    from cytolake.embed.job import run_embed

    cfg = copy_of(tiled_session, tmp_path_factory.mktemp("embedded"))
    return cfg, run_embed(cfg, spark, RANDOM_INIT, log=quiet)


MODELS = ("test-contrastive", RANDOM_INIT)  # the feature models of `evaluated`


@pytest.fixture(scope="session")
def evaluated(tmp_path_factory, embedded, spark):
    """A copy of the embedded lake taken through contrastive training, embedding and graphs of MODELS and
    `run_evaluate` (GNN runs, predictions, report, maps), once per session: (settings, report path, results).
    Tests only read it (a rerun that commits nothing is fine)."""
    from cytolake.embed.job import run_embed
    from cytolake.eval.job import run_evaluate
    from cytolake.graph.job import run_build_graph
    from cytolake.train.dist import Single
    from cytolake.train.job import run_train_contrastive

    cfg = copy_of(embedded[0], tmp_path_factory.mktemp("evaluated"), models=True)
    run_train_contrastive(cfg, Single(), log=quiet)
    for m in MODELS:
        run_embed(cfg, spark, m, log=quiet)
        run_build_graph(cfg, spark, m, log=quiet)
    path, results = run_evaluate(cfg, log=quiet)
    return cfg, Path(path), results


@pytest.fixture
def tiled_copy(tmp_path, tiled_session) -> Settings:
    """Settings of a copy of the ingested and tiled lake for one test (which may write to its lake)."""
    return copy_of(tiled_session, tmp_path)


@pytest.fixture(scope="session")
def atlas_nifti() -> tuple[np.ndarray, np.ndarray]:
    """The atlas NIfTI as nibabel reads it (its data in percent, read-only, and the inverse of its affine),
    decompressed once per session: the independent reference that the pmap tests sample (`expected_pmaps`)."""
    img = nib.load(Atlas(load_config(ROOT / "conf" / "test.yaml").atlas).maps_path)
    raw = np.asanyarray(img.dataobj)
    raw.flags.writeable = False
    return raw, np.linalg.inv(img.affine)


def expected_pmaps(raw, inv, area_ids, xyz) -> np.ndarray:
    """The independent reference for patch pmaps: scipy's trilinear sample of the atlas NIfTI data (`raw`,
    in percent) at MNI points `xyz` (n x 3) for each area, shape (n, areas)."""
    v = (inv @ np.c_[np.asarray(xyz, np.float64), np.ones(len(xyz))].T)[:3]
    return np.stack([map_coordinates(raw[..., i], v, order=1, mode="constant", cval=0.0, output=np.float64) * 0.01
                     for i in area_ids], axis=1)


def quiet(*a) -> None:
    pass


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
    return run_ingest(cfg, spark, log=quiet)


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
