"""The embed job's currency rules on a tiny tiled lake: a rerun embeds nothing; a retrained encoder under the
same model version re-embeds every patch, replacing (never mixing with) the old embeddings."""

import torch

from cytolake.embed.job import run_embed
from cytolake.lake import Lake
from cytolake.train.model import RANDOM_INIT

from conftest import copy_of

quiet = dict(log=lambda *a: None)


def test_a_retrained_encoder_re_embeds_every_patch_once(embedded, tmp_path, spark):
    session, first = embedded
    cfg = copy_of(session, tmp_path, models=True)
    mdir = cfg.paths.models / RANDOM_INIT
    lake = Lake(cfg.paths.lake)
    n = lake.read("patches", ["patch_id"]).num_rows
    assert sum(first.embedded.values()) == n
    assert sum(run_embed(cfg, spark, RANDOM_INIT, **quiet).embedded.values()) == 0  # nothing changed
    old = lake.read("features", ["patch_id", "encoder_hash", "embedding"]).sort_by("patch_id")
    state = torch.load(mdir / "encoder.pt", weights_only=True)
    state = {k: v + 0.01 if v.is_floating_point() else v for k, v in state.items()}
    torch.save(state, mdir / "encoder.pt")  # the model retrained under the same version
    again = run_embed(cfg, spark, RANDOM_INIT, **quiet)
    assert sum(again.embedded.values()) == n and sum(again.dropped.values()) == n
    new = lake.read("features", ["patch_id", "encoder_hash", "embedding"]).sort_by("patch_id")
    assert new.num_rows == n and len(set(new["patch_id"].to_pylist())) == n
    assert len(set(new["encoder_hash"].to_pylist())) == 1 and new["encoder_hash"][0] != old["encoder_hash"][0]
    assert new["embedding"][0].as_py() != old["embedding"][0].as_py()
