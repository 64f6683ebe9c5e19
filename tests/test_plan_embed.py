"""The embed job's incremental rules, on plans: Arrow tables in, work out, no Spark, no lake."""

import pyarrow as pa

from cytolake.embed.plan import plan_embed

ENC = "enc1"


def patches(*rows: tuple) -> pa.Table:
    """(brain_id, patch_id, content_hash, tiling_hash) per patch."""
    cols = list(zip(*rows)) if rows else [[], [], [], []]
    return pa.table({n: pa.array(list(c), pa.string()) for n, c in
                     zip(["brain_id", "patch_id", "content_hash", "tiling_hash"], cols)})


def features(p: pa.Table, encoder: str | None = ENC) -> pa.Table:
    """The model's rows after a complete run of `encoder` over `p`."""
    return p.append_column("encoder_hash", pa.array([encoder] * p.num_rows, pa.string()))


PATCHES = patches(*((b, f"{b}-{i}", "c", "t") for b in ("B01", "B02") for i in range(4)))


def ids(t: pa.Table) -> set:
    return set(t["patch_id"].to_pylist())


def test_a_new_model_embeds_every_patch():
    plan = plan_embed(PATCHES, features(patches()), ENC)
    assert ids(plan.todo) == ids(PATCHES) and plan.embedded == {"B01": 4, "B02": 4} and plan.dropped == {}


def test_unchanged_input_is_no_work():
    plan = plan_embed(PATCHES, features(PATCHES), ENC)
    assert plan.todo.num_rows == 0 and plan.brains == [] and plan.keep.num_rows == 0


def test_new_weights_reembed_everything_and_drop_the_old_rows():
    plan = plan_embed(PATCHES, features(PATCHES, "enc0"), ENC)
    assert ids(plan.todo) == ids(PATCHES) and plan.dropped == {"B01": 4, "B02": 4} and plan.keep.num_rows == 0
    plan = plan_embed(PATCHES, features(PATCHES, None), ENC)  # rows written before encoder_hash existed
    assert ids(plan.todo) == ids(PATCHES) and plan.dropped == {"B01": 4, "B02": 4}


def test_a_retiled_patch_is_reembedded_and_its_old_row_dropped():
    retiled = patches(*(("B02", "B02-1", "c2", "t") if r["patch_id"] == "B02-1" else tuple(r.values())
                        for r in PATCHES.to_pylist()))
    plan = plan_embed(retiled, features(PATCHES), ENC)
    assert ids(plan.todo) == {"B02-1"} and plan.dropped == {"B02": 1} and plan.brains == ["B02"]
    assert ids(plan.keep) == {"B02-0", "B02-2", "B02-3"}  # B01 is not rewritten: nothing of it is kept or read


def test_a_removed_patch_leaves():
    plan = plan_embed(PATCHES.slice(1), features(PATCHES), ENC)
    assert plan.todo.num_rows == 0 and plan.dropped == {"B01": 1} and ids(plan.keep) == {"B01-1", "B01-2", "B01-3"}
