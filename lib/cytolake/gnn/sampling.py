"""Neighbour sampling for graphs too big for a full-graph step. PyG's NeighborLoader needs pyg-lib or
torch-sparse, which have no wheels for torch 2.14; this samples with plain torch ops on a CSR."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Csr:
    rowptr: torch.Tensor  # (n + 1,)
    col: torch.Tensor  # in-neighbours of each node (messages flow col -> node)

    @classmethod
    def from_edges(cls, src: torch.Tensor, dst: torch.Tensor, n: int) -> "Csr":
        order = torch.argsort(dst, stable=True)
        counts = torch.bincount(dst, minlength=n)
        return cls(torch.cat([torch.zeros(1, dtype=torch.long), counts.cumsum(0)]), src[order])


def sample(csr: Csr, seeds: torch.Tensor, fanouts: tuple[int, ...], gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(nodes, local edge_index): the seeds first, then up to fanout sampled in-neighbours per node per hop
    (with replacement, duplicates merged). The first len(seeds) outputs of a model on it are the seeds'."""
    nodes, frontier = seeds, seeds
    srcs, dsts = [], []
    for k in fanouts:
        deg = csr.rowptr[frontier + 1] - csr.rowptr[frontier]
        has = deg > 0
        f, d = frontier[has], deg[has]
        if not len(f):
            break
        pick = (torch.rand(len(f), k, generator=gen) * d[:, None]).long() + csr.rowptr[f][:, None]
        nbr = csr.col[pick].reshape(-1)
        srcs.append(nbr)
        dsts.append(f.repeat_interleave(k))
        new = torch.unique(nbr)
        new = new[~torch.isin(new, nodes)]
        nodes, frontier = torch.cat([nodes, new]), new
    if not srcs:
        return nodes, torch.zeros(2, 0, dtype=torch.long)
    src, dst = torch.cat(srcs), torch.cat(dsts)
    local = torch.full((int(max(nodes.max(), 0)) + 1,), -1, dtype=torch.long)
    local[nodes] = torch.arange(len(nodes))
    ei = torch.unique(torch.stack([local[src], local[dst]]), dim=1)
    return nodes, ei
