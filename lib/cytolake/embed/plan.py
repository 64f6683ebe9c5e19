"""What the embed job has to do for one model, decided from Arrow tables alone (no Spark, no lake I/O).

An embedding is current when the table holds a row for (model, patch) with the patch's content_hash and
tiling_hash and the encoder's current weights (`encoder_hash`): a model retrained under the same version
re-embeds everything, never a mix of old and new encoders. Rows of other weights, or of patches that no
longer exist as they were, are dropped. A brain with anything to embed or drop is rewritten.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from cytolake.lake.keys import rows_in

KEYS = ["patch_id", "content_hash", "tiling_hash"]


@dataclass(frozen=True)
class EmbedPlan:
    todo: pa.Table  # brain_id and KEYS of the patches to embed
    keep: pa.Table  # brain_id and KEYS of the current rows kept in the brains rewritten
    embedded: dict[str, int]  # brain -> patches to embed
    dropped: dict[str, int]  # brain -> stale rows to drop

    @property
    def brains(self) -> list[str]:
        return sorted(set(self.embedded) | set(self.dropped))


def _per_brain(t: pa.Table) -> dict[str, int]:
    return dict(Counter(t["brain_id"].to_pylist()))


def plan_embed(patches: pa.Table, features: pa.Table, encoder: str) -> EmbedPlan:
    """`patches`: brain_id and KEYS of every patch; `features`: brain_id, KEYS and encoder_hash of the model's rows."""
    patches, cols = patches.select(["brain_id", *KEYS]), ["brain_id", *KEYS]
    of_encoder = pc.fill_null(pc.equal(features["encoder_hash"], encoder), False)
    current = features.filter(of_encoder).select(cols)
    live = rows_in(current, patches, KEYS)
    stale = pa.concat_tables([features.filter(pc.invert(of_encoder)).select(cols), current.filter(pc.invert(live))])
    todo = patches.filter(pc.invert(rows_in(patches, current, KEYS)))
    embedded, dropped = _per_brain(todo), _per_brain(stale)
    rewritten = pa.array(sorted(set(embedded) | set(dropped)), pa.string())
    keep = current.filter(live)
    return EmbedPlan(todo=todo, keep=keep.filter(pc.is_in(keep["brain_id"], value_set=rewritten)),
                     embedded=embedded, dropped=dropped)
