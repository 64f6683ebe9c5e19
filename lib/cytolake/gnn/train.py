"""Training the GAT on the annotated nodes of the `train` split, model selection on held-out sections of
it, and prediction for every node. Full-graph steps up to `gnn.full_graph_max_nodes` nodes, neighbour-
sampled mini-batches above."""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from sklearn.decomposition import PCA
from sklearn.preprocessing import StandardScaler

from cytolake.config import GnnSettings, Standardise
from cytolake.gnn.data import GraphSet
from cytolake.gnn.model import GAT
from cytolake.gnn.sampling import Csr, sample
from cytolake.metrics import macro_f1, paired_differences

Inputs = Literal["gnn", "gnn+"]
FEATURE_COMPONENTS = 128  # the 2048-d embedding is reduced by PCA before the GAT (16x less work per layer)
PRIOR_FLOOR = 1e-3  # pmap probability below which the prior stops pushing a class down


def per_brain(x: np.ndarray, brain: np.ndarray) -> np.ndarray:
    """`x` z-scored within each brain's own nodes. A brain's staining, section thickness and scanner shift
    every patch it has (the synthetic world draws a staining gain per brain, `synth/brains.py`), while an
    area's cytoarchitecture does not depend on the brain; removing each brain's own mean and spread, which
    needs no label, takes that shift out of the features, for an unseen brain too. It assumes each brain's
    nodes cover a similar mix of areas (whole delivered brains, as here), and it is transductive: each brain
    is scaled on all its nodes, test and unseen brains included (their features, never their labels)."""
    out = np.empty_like(x)
    for b in np.unique(brain):
        m = brain == b
        out[m] = StandardScaler().fit(x[m]).transform(x[m])
    return out


def node_inputs(gs: GraphSet, kind: Inputs, standardise: Standardise) -> np.ndarray:
    """Standardised node inputs: the embedding's leading principal components (gnn), plus the pmap vector and
    canonical coordinates (gnn+). PCA and the final scaling are fitted on the non-transfer brains; with
    `standardise` "per_brain" (`gnn.standardise`) the components are first z-scored within each brain
    (`per_brain`: each brain on its own nodes, the unseen brain's included), "pooled" leaves them to the
    final scaling; the pmap and coordinates, in the atlas's space, are never standardised per brain."""
    if standardise not in ("per_brain", "pooled"):
        raise ValueError(f"standardise must be per_brain or pooled, not {standardise!r}")
    fit = gs.split != "transfer"
    k = min(FEATURE_COMPONENTS, gs.features.shape[1], int(fit.sum()))
    feats = PCA(k, random_state=0).fit(gs.features[fit]).transform(gs.features)
    if standardise == "per_brain":
        feats = per_brain(feats, gs.brain)
    x = feats if kind == "gnn" else np.c_[feats, gs.pmap, gs.canonical]
    return np.clip(StandardScaler().fit(x[fit]).transform(x), -10, 10).astype(np.float32)  # rare areas: huge z


def node_prior(gs: GraphSet, kind: Inputs) -> np.ndarray | None:
    """GNN+'s prior on the logits: the log of the class pmap vector renormalised per node (None for gnn)."""
    if kind == "gnn":
        return None
    p = np.maximum(gs.class_pmap, 0) + PRIOR_FLOOR
    return np.log(p / p.sum(1, keepdims=True)).astype(np.float32)


def split_masks(gs: GraphSet, validation_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, validation) node masks: annotated `train` nodes, validation = those of one fold of the annotated
    training sections (whole sections, so neighbours of a training node do not leak its label). The sections
    are dealt into about 1 / `validation_fraction` folds once (a fixed shuffle), and seed k validates on fold
    k: the GNN seeds of an evaluation select on different sections, not all on the same one or two.
    With a single annotated training section, a seeded share of its nodes instead."""
    cand = (gs.split == "train") & (gs.label >= 0)
    sections = sorted({(b, int(s)) for b, s in zip(gs.brain[cand], gs.section[cand])})
    rng = np.random.default_rng(seed)
    if cand.sum() < 2:
        raise ValueError(f"need at least two annotated nodes in the train split, found {int(cand.sum())}")
    if len(sections) < 2:
        in_val = cand & (rng.random(len(cand)) < validation_fraction)
        return cand & ~in_val, in_val
    folds = min(len(sections), max(2, round(1 / validation_fraction)))
    order = np.random.default_rng(0).permutation(len(sections))
    val_sections = {sections[i] for k, i in enumerate(order.tolist()) if k % folds == seed % folds}
    in_val = np.array([(b, int(s)) in val_sections for b, s in zip(gs.brain, gs.section)])
    return cand & ~in_val, cand & in_val


@dataclass
class Fitted:
    model: GAT
    history: list[dict]
    best_epoch: int  # the epoch kept (`selected_epoch`)
    sampled: bool
    # one-sided 95 % lower bound of the kept epoch's validation macro-F1 minus epoch 0's (paired bootstrap)
    val_gain_low: float = float("nan")


BOOTSTRAP_RESAMPLES = 1000
SELECTION_LEVEL = 0.95  # one-sided: the best epoch replaces epoch 0 only when its gain is positive at this level


def selected_epoch(y_val: np.ndarray, val_preds: list[np.ndarray], seed: int,
                   prior: bool = True) -> tuple[int, float]:
    """(epoch kept, lower bound of its gain over epoch 0). With a `prior` (GNN+), epoch 0 is the prior's argmax,
    and the epoch with the best validation macro-F1 replaces it only when a paired bootstrap over the validation
    nodes puts its macro-F1 minus epoch 0's above zero at one-sided `SELECTION_LEVEL`: GNN+ leaves the atlas
    only on evidence that it beats it on these nodes, not on a lead within their noise. Without one (GNN),
    epoch 0 is an untrained network, nothing to fall back to: the best epoch after it is kept (the bound is
    still reported). The best of many epochs is tested on the nodes that chose it, so the bound is optimistic,
    and nodes of one section are not independent (benchmarks/results/science.md, "A world as variable as the
    atlas"). The rule and its level were
    fixed before any test or transfer score of the world it was first used on was read
    (benchmarks/results/science.md, "Three world seeds", "What the images add to the atlas")."""
    if not len(y_val):
        return (0 if prior or len(val_preds) < 2 else len(val_preds) - 1), float("nan")
    f1 = [macro_f1(y_val, p) for p in val_preds]
    best = int(np.argmax(f1 if prior else [float("-inf"), *f1[1:]])) if len(f1) > 1 else 0
    if best == 0:
        return 0, 0.0
    low = float(np.quantile(paired_differences(y_val, val_preds[best], val_preds[0], seed, BOOTSTRAP_RESAMPLES),
                            1 - SELECTION_LEVEL))
    return (best if low > 0 or not prior else 0), low


def predict(model: GAT, x: torch.Tensor, edge_index: torch.Tensor, prior: torch.Tensor | None = None) -> np.ndarray:
    """Class probabilities of every node (full-graph inference)."""
    model.eval()
    with torch.no_grad():
        return torch.softmax(model(x, edge_index, prior), dim=1).numpy()


def sampled_epoch(model: GAT, opt: torch.optim.Optimizer, csr: Csr, x: torch.Tensor, y: torch.Tensor,
                  train_idx: torch.Tensor, gnn: GnnSettings, gen: torch.Generator,
                  prior: torch.Tensor | None = None) -> float:
    """One epoch of neighbour-sampled mini-batches over the training nodes (shuffled by gen); the mean loss."""
    losses = []
    for seeds in train_idx[torch.randperm(len(train_idx), generator=gen)].split(gnn.batch_nodes):
        nodes, sub = sample(csr, seeds, gnn.neighbours[: gnn.layers], gen)
        out = model(x[nodes], sub, None if prior is None else prior[nodes])[: len(seeds)]
        loss = torch.nn.functional.cross_entropy(out, y[seeds])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return float(np.mean(losses))


@dataclass(frozen=True)
class FitGraph:
    """One fit's tensors: node inputs, labels, edges, the prior (GNN+), the training nodes, and the CSR
    neighbour index when the graph is too large for full-graph steps (None: full graph)."""

    x: torch.Tensor
    y: torch.Tensor
    edge_index: torch.Tensor
    prior: torch.Tensor | None
    train_idx: torch.Tensor
    csr: Csr | None

    @property
    def sampled(self) -> bool:
        return self.csr is not None


def train_step(model: GAT, opt: torch.optim.Optimizer, graph: FitGraph, gnn: GnnSettings, gen: torch.Generator) -> float:
    """One training epoch on the training nodes, full-graph or neighbour-sampled (`sampled_epoch`); its loss."""
    model.train()
    if graph.sampled:
        return sampled_epoch(model, opt, graph.csr, graph.x, graph.y, graph.train_idx, gnn, gen, graph.prior)
    out = model(graph.x, graph.edge_index, graph.prior)
    loss = torch.nn.functional.cross_entropy(out[graph.train_idx], graph.y[graph.train_idx])
    opt.zero_grad()
    loss.backward()
    opt.step()
    return float(loss.detach())


def scored_epoch(model: GAT, graph: FitGraph, y: np.ndarray, train: np.ndarray, val: np.ndarray, epoch: int,
                 loss_value: float, seconds: float) -> tuple[dict, np.ndarray]:
    """(the epoch's history row: its loss, training and validation macro-F1, validation loss and seconds;
    the validation nodes' predictions, which `selected_epoch` compares)."""
    probs = predict(model, graph.x, graph.edge_index, graph.prior)
    pred = probs.argmax(1)
    val_loss = float(-np.log(np.maximum(probs[val, y[val]], 1e-12)).mean()) if val.any() else float("nan")
    row = {"epoch": epoch, "loss": loss_value, "train_f1": macro_f1(y[train], pred[train]),
           "val_f1": macro_f1(y[val], pred[val]), "val_loss": val_loss, "seconds": seconds}
    return row, pred[val]


def fit(x: np.ndarray, src: np.ndarray, dst: np.ndarray, y: np.ndarray, train: np.ndarray, val: np.ndarray,
        n_classes: int, gnn: GnnSettings, log=print, prior: np.ndarray | None = None) -> Fitted:
    """Train with cross-entropy on `train` nodes (`train_step`), scoring every epoch (`scored_epoch`); keep the
    weights of the best validation epoch when a paired bootstrap says it beats epoch 0 (`selected_epoch`), else
    epoch 0; stop after `patience` epochs without a better one. With a `prior` the network starts exactly at it
    (see `GAT`), so epoch 0 is the prior's argmax and training keeps a correction only when it beats the prior on
    the validation sections beyond their noise.

    Selection is on validation macro-F1, the metric reported, not on the validation loss (kept in the
    history): the loss keeps falling while macro-F1 stays at or below the prior's, so a loss criterion
    moves away from the prior where the validation sections say its argmax is better
    (benchmarks/results/science.md, "Three world seeds")."""
    torch.manual_seed(gnn.seed)
    gen = torch.Generator().manual_seed(gnn.seed)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    pt = None if prior is None else torch.from_numpy(prior)
    ei = torch.from_numpy(np.stack([src, dst])).long()
    correctable = None
    if prior is not None:
        correctable = torch.zeros(n_classes)
        correctable[np.unique(y[train])] = 1.0
    model = GAT(x.shape[1], n_classes, gnn.hidden, gnn.heads, gnn.layers, gnn.dropout, zero_output=prior is not None,
                correctable=correctable)
    opt = torch.optim.Adam(model.parameters(), lr=gnn.lr, weight_decay=gnn.weight_decay)
    sampled = len(x) > gnn.full_graph_max_nodes
    graph = FitGraph(torch.from_numpy(x), torch.from_numpy(y), ei, None if prior is None else torch.from_numpy(prior),
                 torch.from_numpy(np.flatnonzero(train)), Csr.from_edges(ei[0], ei[1], len(x)) if sampled else None)

    row, val_pred = scored_epoch(model, graph, y, train, val, 0, float("nan"), 0.0)
    history, states, val_preds = [row], [copy.deepcopy(model.state_dict())], [val_pred]
    best, best_epoch = row["val_f1"], 0
    for epoch in range(1, gnn.epochs + 1):
        t0 = time.perf_counter()
        loss_value = train_step(model, opt, graph, gnn, gen)
        row, val_pred = scored_epoch(model, graph, y, train, val, epoch, loss_value, time.perf_counter() - t0)
        history.append(row)
        states.append(copy.deepcopy(model.state_dict()))
        val_preds.append(val_pred)
        if row["val_f1"] > best:
            best, best_epoch = row["val_f1"], epoch
        if epoch % 20 == 0 or epoch == 1:
            log(f"  epoch {epoch}: loss {loss_value:.3f} train F1 {row['train_f1']:.3f} val F1 {row['val_f1']:.3f} "
                f"({row['seconds']:.2f} s)")
        if epoch - best_epoch >= gnn.patience:
            break
    kept, low = selected_epoch(y[val], val_preds, gnn.seed, prior is not None)
    model.load_state_dict(states[kept])
    return Fitted(model, history, kept, sampled, low)
