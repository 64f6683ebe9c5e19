"""The embed job: every patch without a current embedding for a model -> `features`, one commit.

Read the keys of `patches` and of the model's `features` -> `plan_embed` (embed/plan.py: what is current)
-> the encoder on Spark over the patches to embed (embed/compute.py) -> one commit that replaces the
(model, brain) partition of each brain with anything to embed or drop: new rows plus its still-current rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pyarrow.compute as pc
from pyspark.sql import functions as F

from cytolake.config import Settings
from cytolake.embed.compute import embedded_features
from cytolake.embed.inference import encoder_hash
from cytolake.embed.plan import KEYS, plan_embed
from cytolake.engines.spark import read_dataframe, rows_with_keys, write_dataframe
from cytolake.lake import Lake
from cytolake.train.model import RANDOM_INIT, ensure_random_encoder


@dataclass
class EmbedSummary:
    embedded: dict[str, int] = field(default_factory=dict)  # brain -> patches embedded
    dropped: dict[str, int] = field(default_factory=dict)  # brain -> stale rows removed
    version: int | None = None


def model_dir(settings: Settings, model_version: str) -> Path:
    """The trained encoder's folder; the random-initialised baseline is created there on first use."""
    d = Path(settings.paths.models) / model_version
    if model_version == RANDOM_INIT:
        ensure_random_encoder(settings, d)
    if not (d / "encoder.pt").is_file() or not (d / "config.json").is_file():
        raise FileNotFoundError(f"{d}: no trained encoder (encoder.pt + config.json); run jobs/train_contrastive.py "
                                f"with train.model_version={model_version} first")
    return d


def run_embed(settings: Settings, spark, model_version: str, log=print) -> EmbedSummary:
    mdir = model_dir(settings, model_version)
    lake = Lake(settings.paths.lake)
    fingerprint = encoder_hash(mdir)
    features = lake.read("features", ["brain_id", *KEYS, "encoder_hash"], pc.field("model_version") == model_version)
    plan = plan_embed(lake.read("patches", ["brain_id", *KEYS]), features, fingerprint)
    summary = EmbedSummary(embedded=plan.embedded, dropped=plan.dropped)
    log(f"embed {model_version}: {plan.todo.num_rows} patches to embed in {len(plan.embedded)} brain(s), "
        f"{sum(plan.dropped.values())} stale rows to drop")
    if not plan.brains:
        return summary
    new = embedded_features(spark, lake, plan.todo, mdir, model_version, fingerprint, settings.embed)
    keep = rows_with_keys(spark, read_dataframe(spark, lake, "features").filter(F.col("model_version") == model_version),
                          plan.keep)
    summary.version = write_dataframe(lake, "features", new.unionByName(keep), "replace_partitions",
                                      {"model_version": [model_version], "brain_id": plan.brains})
    for b in plan.brains:
        log(f"  {b}: {plan.embedded.get(b, 0)} embedded, {plan.dropped.get(b, 0)} stale dropped")
    return summary
