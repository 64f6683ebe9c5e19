"""Timing shared by the benchmarks: one warm-up call, then each call timed, the GPU synchronised around it."""

from __future__ import annotations

import time

import torch


def call_seconds(fn, calls: int, device: str | torch.device) -> list[float]:
    """Seconds of each of `calls` calls of fn after one warm-up call (allocations, cudnn autotune)."""
    cuda = torch.device(device).type == "cuda"
    fn()
    out = []
    for _ in range(calls):
        if cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if cuda:
            torch.cuda.synchronize()
        out.append(time.perf_counter() - t0)
    return out
