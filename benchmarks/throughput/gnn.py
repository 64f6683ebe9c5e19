"""Epoch time of the GAT on a large synthetic graph, as the train_gnn job runs it.

    .venv/bin/python -m benchmarks.throughput.gnn --config conf/local.yaml [--nodes 1000000] [--labelled 0.3] [--areas 103]

The graph is a triangulated square grid (every vertex joined to 6 neighbours, like a surface mesh), with
GNN+'s input width (128 feature components + the pmap vector + 3 coordinates) and `--areas` classes;
a `--labelled` share of the nodes are training nodes. With `gnn` settings from the config (3 layers,
heads x hidden), above `gnn.full_graph_max_nodes` the job trains on neighbour-sampled mini-batches.
Figures, same run:
  sampled pass   one epoch of neighbour-sampled training as `fit` runs it (`sampled_epoch`: sampling,
                 forward, backward, Adam); sampling alone timed in a second pass over the same batches
  full inference one full-graph forward of every node without gradients (what scores every epoch)
  baseline       an MLP with the GAT's layer widths, forward + backward over every node once (the dense
                 work of one pass without the graph)
  ratio          sampled pass / baseline, full inference / baseline
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from cytolake.config import load_config
from cytolake.gnn.model import GAT
from cytolake.gnn.sampling import Csr, sample
from cytolake.gnn.train import predict, sampled_epoch


def grid_mesh(n_nodes: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Directed edges (both directions) of a triangulated side x side grid; (src, dst, nodes)."""
    side = int(np.sqrt(n_nodes))
    idx = np.arange(side * side).reshape(side, side)
    pairs = [(idx[:, :-1], idx[:, 1:]), (idx[:-1, :], idx[1:, :]), (idx[:-1, :-1], idx[1:, 1:])]
    a = np.concatenate([p[0].ravel() for p in pairs])
    b = np.concatenate([p[1].ravel() for p in pairs])
    return np.r_[a, b], np.r_[b, a], side * side


def mlp_pass(x: torch.Tensor, y: torch.Tensor, widths: list[int], n_classes: int, batch: int) -> float:
    """Seconds for one forward + backward + Adam step of an MLP with these widths over every node."""
    dims = widths + [n_classes]
    mlp = torch.nn.Sequential(*[m for i in range(len(dims) - 1) for m in
                                (torch.nn.Linear(dims[i], dims[i + 1]), torch.nn.ELU())][:-1])
    opt = torch.optim.Adam(mlp.parameters(), lr=1e-3)
    t0 = time.perf_counter()
    for xb, yb in zip(x.split(batch), y.split(batch)):
        loss = torch.nn.functional.cross_entropy(mlp(xb), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="conf/local.yaml")
    p.add_argument("--nodes", type=int, default=1_000_000)
    p.add_argument("--labelled", type=float, default=0.3)
    p.add_argument("--areas", type=int, default=103)
    a = p.parse_args(argv)
    s = load_config(a.config).gnn
    torch.manual_seed(0)
    src, dst, n = grid_mesh(a.nodes)
    in_dim = 128 + a.areas + 3
    x = torch.randn(n, in_dim)
    y = torch.randint(0, a.areas, (n,))
    gen = torch.Generator().manual_seed(0)
    train_idx = torch.randperm(n, generator=gen)[: int(a.labelled * n)]
    ei = torch.from_numpy(np.stack([src, dst])).long()
    model = GAT(in_dim, a.areas, s.hidden, s.heads, s.layers, s.dropout)
    opt = torch.optim.Adam(model.parameters(), lr=s.lr)

    t0 = time.perf_counter()
    csr = Csr.from_edges(ei[0], ei[1], n)
    t_csr = time.perf_counter() - t0
    model.train()
    t0 = time.perf_counter()
    sampled_epoch(model, opt, csr, x, y, train_idx, s, gen)
    t_pass = time.perf_counter() - t0
    t0, touched = time.perf_counter(), 0  # the sampling alone, over the same number of seed batches
    for seeds in train_idx[torch.randperm(len(train_idx), generator=gen)].split(s.batch_nodes):
        touched += len(sample(csr, seeds, s.neighbours[: s.layers], gen)[0])
    t_sample = time.perf_counter() - t0
    t0 = time.perf_counter()
    predict(model, x, ei)
    t_infer = time.perf_counter() - t0
    t_mlp = mlp_pass(x, y, [in_dim] + [s.hidden * s.heads] * (s.layers - 1), a.areas, s.batch_nodes)
    print(json.dumps({
        "nodes": n, "directed_edges": len(src), "train_nodes": len(train_idx), "inputs": in_dim, "classes": a.areas,
        "gat": f"{s.layers} layers, {s.heads} heads x {s.hidden}", "batch_nodes": s.batch_nodes,
        "neighbours": list(s.neighbours[: s.layers]), "csr_s": round(t_csr, 2),
        "sampled_pass_s": round(t_pass, 1), "sampling_alone_s": round(t_sample, 1),
        "sampled_nodes_per_seed": round(touched / len(train_idx), 1), "full_inference_s": round(t_infer, 1),
        "baseline_mlp_pass_s": round(t_mlp, 1), "sampled_ratio": round(t_pass / t_mlp, 1),
        "inference_ratio": round(t_infer / t_mlp, 1),
        "threads": torch.get_num_threads()}, indent=2))


if __name__ == "__main__":
    main()
