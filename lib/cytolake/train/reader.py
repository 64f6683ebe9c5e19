"""Streaming the `patches` table into PyTorch, with petastorm's semantics on plain pyarrow.

- The unit of I/O is a Parquet row group of the table's current Delta snapshot.
- Every epoch, the units are permuted from (seed, epoch) and the resulting sample sequence is split
  into contiguous shares, one per rank: each sample is read once per epoch across all ranks.
- A shuffle buffer (seeded by seed, epoch, rank) mixes samples across neighbouring row groups.
- The order is computed on row indices before any data is read, so it does not depend on the number
  of DataLoader workers: batch b of the rank is decoded and augmented by worker b mod W, and the
  DataLoader's round-robin returns batches in order. Resuming at step k starts at batch k.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import torch
from torch.utils.data import IterableDataset, get_worker_info

from cytolake.lake import Lake
from cytolake.train.augment import Augment
from cytolake.train.model import to_input

COLUMNS = ["patch_id", "label", "height", "width", "pmap", "image"]


@dataclass(frozen=True)
class Unit:
    """The rows of one row group that pass the filters."""

    path: str
    row_group: int
    rows: np.ndarray


def snapshot_units(lake: Lake, splits: list[str] | None = None, brains: list[str] | None = None,
                   labelled: bool = False) -> list[Unit]:
    """The row groups of the `patches` snapshot, filtered by brain (partition), split and label (row level)."""
    dt = lake.table("patches")
    adds = pa.table(dt.get_add_actions(flatten=True)).to_pylist()
    root = str(lake.path("patches"))
    units = []
    for a in sorted(adds, key=lambda a: a["path"]):
        if brains and a["partition.brain_id"] not in brains:
            continue
        path = f"{root}/{a['path']}"
        pf = pq.ParquetFile(path)
        for rg in range(pf.num_row_groups):
            keep = np.ones(pf.metadata.row_group(rg).num_rows, bool)
            if splits:
                keep &= pc.is_in(pf.read_row_group(rg, columns=["split"])["split"], pa.array(splits)).to_numpy(zero_copy_only=False)
            if labelled:
                keep &= pf.read_row_group(rg, columns=["label"])["label"].is_valid().to_numpy(zero_copy_only=False)
            rows = np.flatnonzero(keep)
            if len(rows):
                units.append(Unit(path, rg, rows))
    return units


def epoch_order(sizes: list[int], seed: int, epoch: int, rank: int, world: int, shuffle_buffer: int) -> np.ndarray:
    """(unit, position) of every sample this rank reads in this epoch, in order."""
    perm = np.random.default_rng([seed, epoch]).permutation(len(sizes))
    flat = np.concatenate([np.stack([np.full(sizes[u], u), np.arange(sizes[u])], 1) for u in perm]) if sizes else np.zeros((0, 2), int)
    n = len(flat)
    mine = flat[n * rank // world: n * (rank + 1) // world]
    if shuffle_buffer <= 1:
        return mine
    rng = np.random.default_rng([seed, epoch, rank, 1])
    out, buf = np.empty_like(mine), []
    k = 0
    for item in mine:
        buf.append(item)
        if len(buf) >= shuffle_buffer:
            j = int(rng.integers(len(buf)))
            buf[j], buf[-1] = buf[-1], buf[j]
            out[k] = buf.pop()
            k += 1
    for j in rng.permutation(len(buf)):
        out[k] = buf[j]
        k += 1
    return out


class PatchStream(IterableDataset):
    """Batches of (image, pmap, label, patch_id) for one rank. Use with DataLoader(batch_size=None)."""

    def __init__(self, units: list[Unit], batch_size: int, rank: int = 0, world: int = 1, seed: int = 0,
                 shuffle_buffer: int = 1024, augment: Augment | None = None, drop_last: bool = True, cache_units: int = 4):
        self.units, self.batch_size, self.rank, self.world = units, batch_size, rank, world
        self.seed, self.shuffle_buffer, self.augment, self.drop_last = seed, shuffle_buffer, augment, drop_last
        self.cache_units = cache_units
        self.epoch, self.start_step = 0, 0
        self.sizes = [len(u.rows) for u in units]

    def set_epoch(self, epoch: int, start_step: int = 0) -> None:
        self.epoch, self.start_step = epoch, start_step

    def batches_per_epoch(self) -> int:
        """Per rank; with drop_last every rank has the same count (what a distributed step needs)."""
        n = sum(self.sizes)
        if self.drop_last:
            return (n // self.world) // self.batch_size
        share = n * (self.rank + 1) // self.world - n * self.rank // self.world
        return -(-share // self.batch_size)

    def __len__(self) -> int:
        return self.batches_per_epoch() - self.start_step

    def __iter__(self):
        info = get_worker_info()
        w, nw = (info.id, info.num_workers) if info else (0, 1)
        order = epoch_order(self.sizes, self.seed, self.epoch, self.rank, self.world, self.shuffle_buffer)
        cache: OrderedDict[int, pa.Table] = OrderedDict()
        for b in range(self.start_step, self.batches_per_epoch()):
            if (b - self.start_step) % nw != w:
                continue
            yield self._batch(b, order[b * self.batch_size:(b + 1) * self.batch_size], cache)

    def _rows(self, unit: int, cache: OrderedDict) -> pa.Table:
        if unit not in cache:
            u = self.units[unit]
            cache[unit] = pq.ParquetFile(u.path).read_row_group(u.row_group, columns=COLUMNS)
            if len(cache) > self.cache_units:
                cache.popitem(last=False)
        cache.move_to_end(unit)
        return cache[unit]

    def _batch(self, b: int, idx: np.ndarray, cache: OrderedDict) -> dict:
        rows = [self._rows(int(u), cache).slice(int(self.units[int(u)].rows[int(i)]), 1) for u, i in idx]
        t = pa.concat_tables(rows)
        h, w = t["height"][0].as_py(), t["width"][0].as_py()
        images = np.frombuffer(b"".join(t["image"].to_pylist()), np.uint8).reshape(len(idx), h, w)
        x = to_input(torch.from_numpy(images.copy()))
        if self.augment is not None:
            g = torch.Generator().manual_seed(hash((self.seed, self.epoch, self.rank, b)) & 0x7FFFFFFF)
            x = self.augment(x, g)
        pmap = torch.from_numpy(np.stack(t["pmap"].to_numpy(zero_copy_only=False)).astype(np.float32))
        label = torch.tensor([-1 if v is None else v for v in t["label"].to_pylist()], dtype=torch.long)
        return {"image": x, "pmap": pmap, "label": label, "patch_id": t["patch_id"].to_pylist(), "step": b}
