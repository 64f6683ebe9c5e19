"""The streaming reader over a real Delta `patches` table: sharding, epochs, reader threads, reads, resume."""

import numpy as np
import pyarrow as pa
import pytest
import torch

from cytolake.lake import Lake
from cytolake.schemas import schema
from cytolake.train.augment import Augment, batch_generator
from cytolake.train.model import to_input
from cytolake.train import reader
from cytolake.train.reader import PatchStream, Unit, image_array, snapshot_units


@pytest.fixture(scope="module")
def lake(tmp_path_factory):
    lake = Lake(tmp_path_factory.mktemp("reader") / "lake")
    rng = np.random.default_rng(0)
    n = 0
    for part in range(5):  # 5 commits x 2 brains = 10 files / row groups of uneven size
        rows = []
        for b in ("B01", "B02"):
            for _ in range(int(rng.integers(20, 40))):
                rows.append({"patch_id": f"p{n:05d}", "brain_id": b, "section_id": 1, "x": n, "y": 0,
                             "split": "test" if n % 5 == 0 else "train", "label": n % 7 if n % 3 else None,
                             "spacing_um": 1.0, "height": 8, "width": 8, "content_hash": "h", "tiling_hash": "t",
                             "ref_xyz": [0.0, 0.0, 0.0], "pmap": [float(n), 1.0],
                             "image": bytes([n % 256]) * 64})
                n += 1
        lake.write_arrow("patches", schema("patches").table(rows), "append")
    return lake


def ids(loader) -> list[str]:
    return [p for batch in loader for p in batch["patch_id"]]


def batch_ids(batches) -> list[list[str]]:
    return [b["patch_id"] for b in batches]


def test_every_row_once_per_epoch_across_two_ranks(lake):
    units = snapshot_units(lake, splits=["train"])
    expected = {r["patch_id"] for r in lake.read("patches").to_pylist() if r["split"] == "train"}
    seen = []
    for rank in (0, 1):
        s = PatchStream(units, batch_size=6, rank=rank, world=2, seed=3, shuffle_buffer=16, drop_last=False)
        seen += ids(s.batches(2))
    assert sorted(seen) == sorted(expected) and len(seen) == len(set(seen))


class CountingStream(PatchStream):
    """The real stream, noting which row groups it reads (from any reader thread)."""

    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        self.reads = []

    def _rows(self, u, positions):
        self.reads.append((self.units[u].path, self.units[u].row_group))
        return super()._rows(u, positions)


@pytest.mark.parametrize("workers", [0, 1, 3])
def test_each_row_group_is_read_once_per_epoch(lake, workers):
    units = snapshot_units(lake)
    s = CountingStream(units, batch_size=5, rank=1, world=2, seed=4, shuffle_buffer=32)
    s.set_epoch(1, start_step=2)
    got = ids(s.batches(workers))
    assert len(s.reads) == len(set(s.reads)) < len(units)  # rank 1 reads its share of the row groups, each once
    assert len(got) == len(set(got)) == (len(s) * 5)


def test_a_bad_row_group_is_named_in_the_error(lake, tmp_path):
    units = snapshot_units(lake)
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"PAR1 not really parquet")
    s = PatchStream([Unit(str(broken), 0, units[0].rows), *units[1:]], batch_size=5,
                    shuffle_buffer=1)
    with pytest.raises(RuntimeError, match=f"{broken} row group 0"):
        list(s.batches(2))


def test_order_changes_per_epoch_and_not_with_worker_count(lake):
    units = snapshot_units(lake)
    s = PatchStream(units, batch_size=5, rank=0, world=1, seed=1, shuffle_buffer=32)
    e0 = batch_ids(s.batches(0))
    assert all(len(b) == 5 for b in e0)
    s.set_epoch(1)
    e1 = batch_ids(s.batches(3))
    assert sorted(sum(e0, [])) == sorted(sum(e1, [])) and e0 != e1
    s.set_epoch(0)
    assert batch_ids(s.batches(1)) == batch_ids(s.batches(3)) == e0


def test_resume_from_a_step_gives_the_same_remaining_batches(lake):
    units = snapshot_units(lake, brains=["B02"])
    full = PatchStream(units, batch_size=4, seed=9)
    full.set_epoch(2)
    batches = list(full.batches(2))
    resumed = PatchStream(units, batch_size=4, seed=9)
    resumed.set_epoch(2, start_step=5)
    rest = list(resumed.batches(1))
    assert len(rest) == len(batches) - 5 == len(resumed)
    for a, b in zip(batches[5:], rest):
        assert a["patch_id"] == b["patch_id"] and a["step"] == b["step"]
        assert torch.equal(a["image"], b["image"]) and torch.equal(a["pmap"], b["pmap"])
    assert all(p in {r["patch_id"] for r in lake.read("patches").to_pylist() if r["brain_id"] == "B02"}
               for b in batches for p in b["patch_id"])


def test_augmentation_is_fixed_by_the_batch_position(lake):
    x = to_input(next(PatchStream(snapshot_units(lake), batch_size=8).batches(0))["image"])
    aug = Augment()
    a = aug(x, batch_generator(9, 2, 0, 5))
    assert a.shape == x.shape and not torch.equal(a, x)
    assert torch.equal(a, aug(x, batch_generator(9, 2, 0, 5)))
    assert not torch.equal(a, aug(x, batch_generator(9, 2, 0, 6)))


def test_batches_carry_pmap_label_and_pixels(lake):
    s = PatchStream(snapshot_units(lake), batch_size=8, shuffle_buffer=1)
    b = next(s.batches(0))
    n = [int(p[1:]) for p in b["patch_id"]]
    assert b["image"].shape == (8, 8, 8) and b["image"].dtype == torch.uint8 and b["pmap"].shape == (8, 2)
    assert b["pmap"][:, 0].tolist() == [float(v) for v in n]
    assert b["label"].tolist() == [v % 7 if v % 3 else -1 for v in n]
    assert b["image"][:, 0, 0].tolist() == [v % 256 for v in n]
    x = to_input(b["image"])
    assert x.shape == (8, 1, 8, 8) and torch.allclose(x[:, 0, 0, 0], (torch.tensor([v % 256 for v in n]) / 255.0 - 0.5) / 0.25)


@pytest.mark.parametrize("kind", [pa.binary(), pa.large_binary()])
def test_image_array_views_the_column_and_rejects_a_wrong_size(kind):
    images = pa.array([bytes([i]) * 6 for i in range(4)], kind).slice(1)  # an offset into the buffers
    got = image_array(images, 2, 3)
    assert got.shape == (3, 2, 3) and got[:, 0, 0].tolist() == [1, 2, 3] and not got.flags.owndata
    with pytest.raises(ValueError, match="not height x width = 3 x 3 bytes"):
        image_array(images, 3, 3)
    with pytest.raises(TypeError, match="not binary"):
        image_array(pa.array(["abcdef"]), 2, 3)


@pytest.mark.parametrize("batch_size,shuffle_buffer,world,start_step", [(5, 32, 1, 0), (4, 8, 2, 3), (16, 1024, 1, 0),
                                                                         (3, 1, 3, 1)])
def test_the_pool_holds_exactly_the_most_rows_the_plan_keeps_waiting(lake, batch_size, shuffle_buffer, world,
                                                                     start_step, monkeypatch):
    """The pool is allocated once at the plan's bound: replaying the plan's arrivals and batches, the rows
    waiting never exceed it and reach it (a bound of every sample would pass the first check alone), and
    `batches` sizes its pool by that bound."""
    s = PatchStream(snapshot_units(lake), batch_size, rank=world - 1, world=world, seed=3,
                    shuffle_buffer=shuffle_buffer)
    s.set_epoch(1, start_step)
    plan = s._plan()
    bound, waiting, k, most = plan.most_waiting(batch_size), 0, 0, 0
    for start in range(0, plan.size, batch_size):
        end = min(start + batch_size, plan.size)
        while k < len(plan.units) and plan.first[k] < end:
            waiting += len(plan.samples[int(plan.units[k])])
            k += 1
        most = max(most, waiting)
        waiting -= end - start
    assert most == bound
    assert bound < plan.size or shuffle_buffer >= plan.size
    capacities = []

    class Recorded(reader._Pool):
        def __init__(self, samples, capacity):
            capacities.append(capacity)
            super().__init__(samples, capacity)

    monkeypatch.setattr(reader, "_Pool", Recorded)
    assert len(ids(s.batches(2))) == plan.size
    assert capacities == [bound]
