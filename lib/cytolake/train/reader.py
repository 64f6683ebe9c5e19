"""Streaming the `patches` table into PyTorch, with petastorm's semantics on plain pyarrow.

- The unit of I/O is a Parquet row group of the table's current Delta snapshot.
- Every epoch, the units are permuted from (seed, epoch) and the resulting sample sequence is split
  into contiguous shares, one per rank: each sample is read once per epoch across all ranks.
- A shuffle buffer (seeded by seed, epoch, rank) mixes samples across neighbouring row groups.
- The order is computed on row indices before any data is read, so it does not depend on the number
  of reader threads. Resuming at step k starts at batch k.
- Each row group a rank needs is read once per epoch: the units are read in the order they are first
  needed, by a few threads a few units ahead, and `PatchStream.batches` assembles the batches from a pool
  of rows that have arrived. (Assembling batches in DataLoader worker processes instead made every worker
  read nearly every row group, since a shuffle spreads a row group over many batches: W workers, W times
  the storage reads.)
- Threads, not processes: decoding is pyarrow's C++ (Parquet, zstd), which runs outside the GIL, and
  augmentation is not the reader's (the trainer applies it on the training device). Handing a unit from a
  worker process to the trainer through shared memory was as slow as decoding it
  (benchmarks/results/training.md, "Training step, loss and reader").
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import torch

from cytolake.lake import Lake

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
    root = str(lake.path("patches"))
    units = []
    for a in lake.files("patches").to_pylist():
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
    s = min(shuffle_buffer, len(mine))
    if s <= 1:
        return mine
    rng = np.random.default_rng([seed, epoch, rank, 1])
    # a full buffer of s samples: each new sample replaces one drawn at random, which is emitted
    buf, out = list(range(s)), []
    for i, j in zip(range(s, len(mine)), rng.integers(s, size=len(mine) - s).tolist()):
        out.append(buf[j])
        buf[j] = i
    out.extend(buf[j] for j in rng.permutation(s).tolist())
    return mine[out]


class PatchStream:
    """Batches of (image, pmap, label, patch_id, step) for one rank: iterate `batches(workers)`.

    `image` is uint8 (N, H, W): pass it through `to_input` on the device.
    """

    def __init__(self, units: list[Unit], batch_size: int, rank: int = 0, world: int = 1, seed: int = 0,
                 shuffle_buffer: int = 1024, drop_last: bool = True):
        self.units, self.batch_size, self.rank, self.world = units, batch_size, rank, world
        self.seed, self.shuffle_buffer, self.drop_last = seed, shuffle_buffer, drop_last
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
        """Batches left in this epoch."""
        return self.batches_per_epoch() - self.start_step

    def _plan(self) -> EpochPlan:
        """The epoch's plan from the start step (the same in every run with this seed, epoch and rank)."""
        bs = self.batch_size
        order = epoch_order(self.sizes, self.seed, self.epoch, self.rank, self.world, self.shuffle_buffer)
        order = order[self.start_step * bs: self.batches_per_epoch() * bs]
        unit, pos = order[:, 0], order[:, 1]
        by_unit = np.lexsort((pos, unit))
        units, starts = np.unique(unit[by_unit], return_index=True)
        samples = dict(zip(units.tolist(), np.split(by_unit, starts[1:])))
        _, first = np.unique(unit, return_index=True)
        by_need = np.argsort(first)
        return EpochPlan(len(order), units[by_need], first[by_need], samples, {u: pos[i] for u, i in samples.items()})

    def _rows(self, u: int, positions: np.ndarray) -> dict[str, np.ndarray]:
        """The rows at `positions` of unit u (positions among the unit's filtered rows, sorted), as arrays."""
        unit = self.units[u]
        try:
            t = pq.ParquetFile(unit.path).read_row_group(unit.row_group, columns=COLUMNS)
            rows = unit.rows[positions]
            if len(rows) < t.num_rows or (rows != np.arange(len(rows))).any():  # all rows: no copy
                t = t.take(rows)
            t = t.combine_chunks()  # one chunk per column: a unit in the plan has at least one row
            n, h, w = t.num_rows, t["height"][0].as_py(), t["width"][0].as_py()
            return {"image": image_array(t["image"].chunk(0), h, w),
                    "pmap": t["pmap"].chunk(0).flatten().to_numpy().astype(np.float32, copy=False).reshape(n, -1),
                    "label": pc.fill_null(t["label"], -1).to_numpy().astype(np.int64),
                    "patch_id": t["patch_id"].to_numpy(zero_copy_only=False)}
        except Exception as e:
            raise RuntimeError(f"reader: {unit.path} row group {unit.row_group}: {e}") from e

    def batches(self, workers: int) -> Iterator[dict]:
        """The rank's batches of this epoch from its start step, in order; `workers` threads read the units
        (0: this thread). Rows wait in a `_Pool` until their batch (about a shuffle buffer's worth)."""
        plan = self._plan()
        arriving = read_ahead(lambda u: self._rows(u, plan.positions[u]), plan.units.tolist(), workers)
        pool, k = _Pool(plan.size, plan.most_waiting(self.batch_size)), 0
        for i, start in enumerate(range(0, plan.size, self.batch_size)):
            end = min(start + self.batch_size, plan.size)
            while k < len(plan.units) and plan.first[k] < end:
                pool.add(plan.samples[int(plan.units[k])], next(arriving))
                k += 1
            yield {**pool.take(start, end), "step": self.start_step + i}


def image_array(images: pa.Array, h: int, w: int) -> np.ndarray:
    """A binary column of h x w uint8 images as a zero-copy (n, h, w) array; every value must be h x w bytes."""
    if not (pa.types.is_binary(images.type) or pa.types.is_large_binary(images.type)):
        raise TypeError(f"images are {images.type}, not binary")
    width = np.int64 if pa.types.is_large_binary(images.type) else np.int32
    offsets = np.frombuffer(images.buffers()[1], width)[images.offset:images.offset + len(images) + 1]
    if not (np.diff(offsets) == h * w).all():
        raise ValueError(f"an image is not height x width = {h} x {w} bytes")
    return np.frombuffer(images.buffers()[2], np.uint8)[offsets[0]:offsets[-1]].reshape(-1, h, w)


def read_ahead(read: Callable, items: Iterable, workers: int) -> Iterator:
    """read(item) for each item in order, by `workers` threads at most 2 x workers items ahead (0: inline).
    Leaving early waits for the reads in flight."""
    if workers == 0:
        yield from map(read, items)
        return
    items = iter(items)
    with ThreadPoolExecutor(workers, thread_name_prefix="cytolake-reader") as ex:
        ahead = deque(ex.submit(read, x) for x in itertools.islice(items, 2 * workers))
        while ahead:
            done = ahead.popleft()
            ahead.extend(ex.submit(read, x) for x in itertools.islice(items, 1))
            yield done.result()


@dataclass(frozen=True)
class EpochPlan:
    """What one rank reads in one epoch from its start step, computed from row indices alone. Samples are
    numbered by their place in the epoch: batch b is samples b*B .. (b+1)*B - 1."""

    size: int  # samples in the plan
    units: np.ndarray  # the units in the order they are first needed
    first: np.ndarray  # the first sample of each of them
    samples: dict[int, np.ndarray]  # unit -> its samples, in the order of their positions
    positions: dict[int, np.ndarray]  # unit -> those positions (among its filtered rows), sorted

    def most_waiting(self, batch_size: int) -> int:
        """The most rows that have arrived and are not yet in a batch at any point of the epoch: before batch
        b every unit first needed before its end has arrived, and the b * batch_size samples before it are gone."""
        if not self.size:
            return 0
        ends = np.minimum(np.arange(batch_size, self.size + batch_size, batch_size), self.size)
        arrived = np.concatenate([[0], np.cumsum([len(self.samples[int(u)]) for u in self.units])])
        waiting = arrived[np.searchsorted(self.first, ends, side="left")] - (ends - batch_size).clip(0)
        return int(waiting.max())


class _Pool:
    """The rows that have arrived and are not yet in a batch, in one array per column, so that a batch is one
    take per column wherever its rows came from. A slot table maps each sample of the epoch to its row;
    a batch's rows free their slots for the rows that arrive next. The arrays hold exactly the most rows the
    plan ever keeps waiting, allocated once: each row is copied in once and out once (growing and
    compacting the arrays instead cost most of the reader's time at 2048 px: benchmarks/results/gpu.md,
    "GPU figures")."""

    def __init__(self, samples: int, capacity: int):
        self.slot = np.full(samples, -1, np.int64)
        self.free = np.arange(capacity)  # free rows: the first `n_free` entries
        self.n_free = capacity
        self.columns: dict[str, np.ndarray] = {}

    def add(self, samples: np.ndarray, columns: dict[str, np.ndarray]) -> None:
        """Rows for `samples` (in that order)."""
        n = len(samples)
        if n > self.n_free:
            raise RuntimeError(f"reader: {n} rows arrived for {self.n_free} free rows of the pool (the plan's bound is wrong)")
        if not self.columns:
            self.columns = {k: np.empty((len(self.free), *v.shape[1:]), v.dtype) for k, v in columns.items()}
        rows = self.free[self.n_free - n:self.n_free]
        for k, v in columns.items():
            if v.shape[1:] != self.columns[k].shape[1:]:
                raise ValueError(f"reader: {k} of shape {v.shape[1:]} among rows of shape {self.columns[k].shape[1:]}: "
                                 "one patch size per training run (filter by brain or retile)")
            self.columns[k][rows] = v
        self.slot[samples] = rows
        self.n_free -= n

    def take(self, start: int, end: int) -> dict:
        """Samples start .. end - 1 as a batch, each copied once; their rows become free."""
        rows = self.slot[start:end]
        if (rows < 0).any():
            raise RuntimeError(f"reader: samples {start}..{end - 1} requested before their rows arrived")
        out = {k: np.take(v, rows, axis=0) for k, v in self.columns.items()}
        self.free[self.n_free:self.n_free + len(rows)] = rows
        self.n_free += len(rows)
        return {"image": torch.from_numpy(out["image"]), "pmap": torch.from_numpy(out["pmap"]),
                "label": torch.from_numpy(out["label"]), "patch_id": out["patch_id"].tolist()}
