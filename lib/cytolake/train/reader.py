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
    """Batches of (image, pmap, label, patch_id) for one rank. Use with DataLoader(batch_size=None).

    `image` is uint8 (N, H, W) without augmentation (pass it through `to_input` on the device), or the
    augmented float (N, 1, H, W) model input.
    """

    def __init__(self, units: list[Unit], batch_size: int, rank: int = 0, world: int = 1, seed: int = 0,
                 shuffle_buffer: int = 1024, augment: Augment | None = None, drop_last: bool = True):
        self.units, self.batch_size, self.rank, self.world = units, batch_size, rank, world
        self.seed, self.shuffle_buffer, self.augment, self.drop_last = seed, shuffle_buffer, augment, drop_last
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
        mine = [b for b in range(self.start_step, self.batches_per_epoch()) if (b - self.start_step) % nw == w]
        if not mine:
            return
        bs = self.batch_size
        need = np.concatenate([order[b * bs:(b + 1) * bs] for b in mine])
        by_unit = np.argsort(need[:, 0], kind="stable")
        units, starts = np.unique(need[by_unit, 0], return_index=True)
        needed = dict(zip(units.tolist(), np.split(need[by_unit, 1], starts[1:])))
        pending: dict[int, _Pending] = {}
        for b in mine:
            yield self._batch(b, order[b * bs:(b + 1) * bs], needed, pending)


    def _pending(self, u: int, needed: dict, pending: dict) -> "_Pending":
        """A row group is read once per epoch and worker; what this worker still needs from it is kept as
        arrays (about a shuffle buffer's worth of rows in all) and freed as it is used."""
        p = pending.get(u)
        if p is None:
            rows = np.sort(needed[u])
            unit = self.units[u]
            t = pq.ParquetFile(unit.path).read_row_group(unit.row_group, columns=COLUMNS).take(unit.rows[rows])
            t = t.combine_chunks()
            n, h, w = t.num_rows, t["height"][0].as_py(), t["width"][0].as_py()
            img = t["image"].chunk(0) if t["image"].num_chunks else t["image"]
            offsets = np.frombuffer(img.buffers()[1], np.int32)[img.offset:img.offset + n + 1]
            images = np.frombuffer(img.buffers()[2], np.uint8)[offsets[0]:offsets[-1]].reshape(n, h, w)
            pm = t["pmap"].combine_chunks().flatten().to_numpy().astype(np.float32, copy=False).reshape(n, -1)
            p = pending[u] = _Pending(dict(zip(rows.tolist(), range(n))), n, images, pm,
                                      pc.fill_null(t["label"], -1).to_numpy().astype(np.int64),
                                      t["patch_id"].to_pylist())
        return p

    def _batch(self, b: int, idx: np.ndarray, needed: dict, pending: dict) -> dict:
        """One batch, each sample copied once into the batch arrays. Images stay uint8 (4x less to move
        between processes and to the GPU; `to_input` converts them on the device) unless augmented here."""
        n = len(idx)
        images = labels = pmap = None
        ids: list[str] = [""] * n
        for u in dict.fromkeys(idx[:, 0].tolist()):
            sel = np.flatnonzero(idx[:, 0] == u)
            p = self._pending(u, needed, pending)
            rows = [p.index[int(i)] for i in idx[sel, 1]]
            if images is None:
                images = np.empty((n, *p.images.shape[1:]), np.uint8)
                pmap = np.empty((n, p.pmap.shape[1]), np.float32)
                labels = np.empty(n, np.int64)
            images[sel], pmap[sel], labels[sel] = p.images[rows], p.pmap[rows], p.label[rows]
            for k, r in zip(sel.tolist(), rows):
                ids[k] = p.patch_id[r]
            p.left -= len(sel)
            if p.left == 0:
                del pending[u]
        x = torch.from_numpy(images)
        if self.augment is not None:
            g = torch.Generator().manual_seed(hash((self.seed, self.epoch, self.rank, b)) & 0x7FFFFFFF)
            x = self.augment(to_input(x), g)
        return {"image": x, "pmap": torch.from_numpy(pmap), "label": torch.from_numpy(labels), "patch_id": ids, "step": b}


@dataclass
class _Pending:
    """The rows of one row group a worker still has to emit."""

    index: dict[int, int]  # position in the unit -> row of the arrays below
    left: int
    images: np.ndarray
    pmap: np.ndarray
    label: np.ndarray
    patch_id: list[str]
