"""The executor side of embedding: the encoder loaded once per Python worker, patches embedded in batches.

Shared by the embed job (the grid patches into `features`) and build_graph (the patches cut at its nodes),
so both embed with one loop, one device rule and one input scaling.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa

from cytolake.io.arrow import list_array
from cytolake.io.files import content_hash
from cytolake.train.reader import image_array

_MODELS: dict[tuple[str, str, int], object] = {}


def _device(choice: str) -> str:
    import torch

    if choice == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return choice


def cached_encoder(model_dir: str, device: str):
    """The encoder of `model_dir` on `device`, loaded once per worker process (Spark reuses its Python
    workers, so every task after the first on an executor skips the load). Channels-last: ahead of the
    default layout on CPU and on a GPU at the demo's patch sizes, no better on a GPU at 2048 px, where the host
    bounds it (benchmarks/results/embedding.md, "Embedding"; benchmarks/results/gpu.md, "GPU figures")."""
    from cytolake.train.model import load_encoder, with_layout

    weights = Path(model_dir) / "encoder.pt"
    key = (model_dir, device, weights.stat().st_mtime_ns)
    if key not in _MODELS:
        _MODELS.clear()
        _MODELS[key] = with_layout(load_encoder(Path(model_dir), device).to(device), "channels_last")
    return _MODELS[key]


def embed_images(model, pixels: np.ndarray, device: str) -> np.ndarray:
    """(N, feature_dim) float32 backbone features of (N, height, width) uint8 patches."""
    import torch

    from cytolake.train.model import to_input

    x = torch.from_numpy(pixels.copy())
    with torch.inference_mode():
        x = to_input(x.to(device)).contiguous(memory_format=model.input_layout)
        if device == "cuda":
            with torch.autocast("cuda", dtype=torch.bfloat16):
                return model.features(x).float().cpu().numpy()
        return model.features(x).numpy()


def encoder_hash(model_dir: str | Path) -> str:
    """Fingerprint of an encoder's weights: what makes an embedding current besides its patch."""
    return content_hash(Path(model_dir) / "encoder.pt")


def task_encoder(model_dir: str, threads: int, device_choice: str):
    """(encoder, device) for one Spark task: torch limited to `threads` CPU threads, the device resolved
    (`auto`: the executor's GPU when it has one), the encoder loaded once per worker (`cached_encoder`)."""
    import torch

    torch.set_num_threads(threads)
    device = _device(device_choice)
    return cached_encoder(model_dir, device), device


def embedded_batches(patches: Iterable[pa.Table], model, device: str,
                     batch_size: int) -> Iterator[tuple[pa.Table, np.ndarray]]:
    """Patch rows (height, width, image and any other columns) regrouped into forward passes of `batch_size`
    rows (the last one shorter): per pass, its rows without `image` and their (n, feature_dim) features.

    The one inference loop of the lake: the embed job runs it over `patches` rows, build_graph over the
    patches it cuts at its nodes. It holds at most one pass plus one incoming table of pixels.
    """
    pending: list[pa.Table] = []
    n = 0

    def flush(t: pa.Table) -> tuple[pa.Table, np.ndarray]:
        t = t.combine_chunks()
        shapes = t.group_by(["height", "width"]).aggregate([])
        if shapes.num_rows != 1:
            raise ValueError(f"patches of different sizes in one batch: {sorted(shapes.to_pylist(), key=str)}; "
                             "re-tile with one geometry")
        h, w = shapes["height"][0].as_py(), shapes["width"][0].as_py()
        emb = embed_images(model, image_array(t["image"].chunk(0), h, w), device)
        return t.drop_columns(["image"]), emb

    for t in patches:
        if not t.num_rows:
            continue
        pending.append(t)
        n += t.num_rows
        while n >= batch_size:
            both = pa.concat_tables(pending)
            pending, n = [both.slice(batch_size)], n - batch_size
            yield flush(both.slice(0, batch_size))
    if n:
        yield flush(pa.concat_tables(pending))


def embed_task(model_dir: str, model_version: str, encoder_fingerprint: str, batch_size: int, threads: int,
               device_choice: str, out_schema: pa.Schema):
    """A mapInArrow function: patch rows in (patch_id, brain_id, content_hash, tiling_hash, height, width,
    image), `features` rows out, `batch_size` patches per forward pass."""

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        model, device = task_encoder(model_dir, threads, device_choice)
        tables = (pa.Table.from_batches([b]) for b in batches)
        for t, emb in embedded_batches(tables, model, device, batch_size):
            n = t.num_rows
            yield pa.RecordBatch.from_arrays(
                [pa.array([model_version] * n), *(t[c].combine_chunks() for c in ("patch_id", "brain_id", "content_hash",
                                                                                   "tiling_hash")),
                 pa.array([encoder_fingerprint] * n), list_array(emb, pa.float32())], schema=out_schema)

    return run
