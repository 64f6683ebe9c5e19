"""The embed stage's compute: the encoder on Spark over the patches to embed, Arrow batch by batch
(`embed/inference.py: embed_task`), in Spark tasks sized for the cores (`embed_partitions`)."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from cytolake.config import EmbedSettings
from cytolake.embed.inference import embed_task
from cytolake.embed.plan import KEYS
from cytolake.engines.spark import read_dataframe, rows_with_keys
from cytolake.lake import Lake
from cytolake.schemas import schema


def embed_partitions(patches: int, batch_size: int, cores: int) -> int:
    """Spark tasks for `patches`: a multiple of the cores (the patches table has about one file per brain, so
    3 brains on 2 cores would leave a core idle for a third of the job), each at most 16 batches."""
    per_round = max(1, -(-patches // (batch_size * 16 * cores)))
    return cores * per_round


def embedded_features(spark, lake: Lake, todo: pa.Table, mdir: Path, model_version: str, fingerprint: str,
                      embed: EmbedSettings):
    """The `features` rows of the patches in `todo` (brain_id and KEYS), as a DataFrame computed on Spark."""
    out = schema("features")
    patches = rows_with_keys(spark, read_dataframe(spark, lake, "patches"), todo)
    return patches.select("brain_id", *KEYS, "height", "width", "image").repartition(
        embed_partitions(todo.num_rows, embed.batch_size, spark.sparkContext.defaultParallelism)).mapInArrow(
        embed_task(str(mdir), model_version, fingerprint, embed.batch_size, embed.threads_per_task, embed.device,
                   out.arrow()), out.spark())
