"""The graph attention network: `layers` GATConv layers (PyTorch Geometric), multi-head and concatenated
in the hidden layers, one averaged head producing the class logits.

Given a prior (per node, log class probabilities: GNN+'s log pmap), the network learns a correction to
it: logits = GAT(x) + w * prior, w a learned scalar starting at 1. As plain standardised inputs the pmap
is one block among many and a small training set overfits the image features instead of falling back on
it; as a prior it is where training starts. With `zero_output` the last layer starts at zero, so the
untrained network predicts exactly the prior's argmax and every step away from it is learned. `correctable`
(0/1 per class) limits the correction to the classes that have training labels: for the others training has no
evidence, and cross-entropy only ever lowers their logits (every step pushes down every class but the target),
so without the mask GNN+ learns to never predict an area that no training section annotates, although the
test sections and an unseen brain have them; for those classes the prior stands."""

from __future__ import annotations

import torch
from torch import nn
from torch_geometric.nn import GATConv


class GAT(nn.Module):
    def __init__(self, in_dim: int, n_classes: int, hidden: int = 64, heads: int = 4, layers: int = 3,
                 dropout: float = 0.3, zero_output: bool = False, correctable: torch.Tensor | None = None):
        super().__init__()
        self.register_buffer("correctable", correctable)
        self.dropout = dropout
        self.prior_weight = nn.Parameter(torch.ones(()))
        dims = [in_dim] + [hidden * heads] * (layers - 1)
        self.convs = nn.ModuleList(
            [GATConv(d, hidden, heads=heads, dropout=dropout) for d in dims[:-1]]
            + [GATConv(dims[-1], n_classes, heads=1, concat=False, dropout=dropout)])
        if zero_output:
            with torch.no_grad():
                for p in self.convs[-1].parameters():
                    p.zero_()

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor, prior: torch.Tensor | None = None) -> torch.Tensor:
        for conv in self.convs[:-1]:
            x = nn.functional.dropout(x, self.dropout, self.training)
            x = nn.functional.elu(conv(x, edge_index))
        x = nn.functional.dropout(x, self.dropout, self.training)
        out = self.convs[-1](x, edge_index)
        if self.correctable is not None:
            out = out * self.correctable
        return out if prior is None else out + self.prior_weight * prior
