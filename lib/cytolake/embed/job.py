"""The embed job: every patch without a current embedding for a model -> `features`, one commit.

Incremental: a patch is embedded when the table has no row for (model, patch) with the patch's
current content_hash and tiling_hash and the encoder's current weights (`encoder_hash`: a model retrained
under the same version re-embeds everything, never a mix of old and new encoders). A brain with anything to (re)embed or drop gets its
(model, brain) partition replaced in one commit: new rows plus its still-current rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pyspark.sql import functions as F

from cytolake.config import Settings
from cytolake.embed.inference import embed_task, encoder_hash
from cytolake.lake import Lake
from cytolake.lake.spark import read_dataframe, write_dataframe
from cytolake.schemas import schema
from cytolake.train.model import RANDOM_INIT, ensure_random_encoder

_KEYS = ["patch_id", "content_hash", "tiling_hash"]


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


def embed_partitions(patches: int, batch_size: int, cores: int) -> int:
    """Spark tasks for `patches`: a multiple of the cores (the patches table has about one file per brain, so
    3 brains on 2 cores would leave a core idle for a third of the job), each at most 16 batches."""
    per_round = max(1, -(-patches // (batch_size * 16 * cores)))
    return cores * per_round


def run_embed(settings: Settings, spark, model_version: str, log=print) -> EmbedSummary:
    mdir = model_dir(settings, model_version)
    lake = Lake(settings.paths.lake)
    summary = EmbedSummary()
    patches = read_dataframe(spark, lake, "patches").select("brain_id", *_KEYS, "height", "width", "image")
    fingerprint = encoder_hash(mdir)
    have = read_dataframe(spark, lake, "features").filter(F.col("model_version") == model_version)
    current = have.filter(F.col("encoder_hash") == fingerprint)
    todo = patches.join(current.select(*_KEYS), _KEYS, "left_anti")
    stale = (have.filter(F.col("encoder_hash").isNull() | (F.col("encoder_hash") != fingerprint)).select("brain_id", *_KEYS)
             .unionByName(current.select("brain_id", *_KEYS).join(patches.select(*_KEYS), _KEYS, "left_anti")))
    summary.embedded = {r["brain_id"]: r["count"] for r in todo.groupBy("brain_id").count().collect()}
    summary.dropped = {r["brain_id"]: r["count"] for r in stale.groupBy("brain_id").count().collect()}
    dirty = sorted(set(summary.embedded) | set(summary.dropped))
    log(f"embed {model_version}: {sum(summary.embedded.values())} patches to embed in {len(summary.embedded)} brain(s), "
        f"{sum(summary.dropped.values())} stale rows to drop")
    if not dirty:
        return summary
    e = settings.embed
    out = schema("features")
    new = todo.repartition(embed_partitions(sum(summary.embedded.values()), e.batch_size,
                                            spark.sparkContext.defaultParallelism)).mapInArrow(
        embed_task(str(mdir), model_version, fingerprint, e.batch_size, e.threads_per_task, e.device, out.arrow()), out.spark())
    keep = current.filter(F.col("brain_id").isin(dirty)).join(patches.select(*_KEYS), _KEYS, "left_semi")
    summary.version = write_dataframe(lake, "features", new.unionByName(keep), "replace_partitions",
                                      {"model_version": [model_version], "brain_id": dirty})
    for b in dirty:
        log(f"  {b}: {summary.embedded.get(b, 0)} embedded, {summary.dropped.get(b, 0)} stale dropped")
    return summary
