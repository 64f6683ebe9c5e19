"""The probability-guided contrastive loss of the poster (Schiffer et al., poster "Contrastive Learning from
Probabilistic Maps for Cytoarchitectonic Classification of the Cortex")."""

from __future__ import annotations

import torch


def anchor_losses(z: torch.Tensor, p: torch.Tensor, z_all: torch.Tensor, p_all: torch.Tensor, offset: int,
                  tau: float, include_self_weight: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """L_i for the anchors z (rows offset..offset+n of the whole batch z_all), and which anchors count.

    This is how a rank computes its share: its own anchors against the global batch.
    """
    n, m = z.shape[0], z_all.shape[0]
    z32, p32, za, pa = z.float(), p.float(), z_all.float(), p_all.float()
    self_mask = torch.zeros(n, m, dtype=torch.bool, device=z.device)
    self_mask[torch.arange(n), offset + torch.arange(n)] = True
    logits = (z32 @ za.T) / tau
    log_prob = logits - torch.logsumexp(logits.masked_fill(self_mask, float("-inf")), dim=1, keepdim=True)
    w = p32 @ pa.T
    w_others = w.masked_fill(self_mask, 0.0)
    others = w_others.sum(dim=1)
    norm = w.sum(dim=1) if include_self_weight else others
    valid = others > 0
    losses = -(w_others * log_prob.masked_fill(self_mask, 0.0)).sum(dim=1) / torch.where(valid, norm, torch.ones_like(norm))
    return torch.where(valid, losses, torch.zeros_like(losses)), valid


def pmap_contrastive_loss(z: torch.Tensor, p: torch.Tensor, tau: float, include_self_weight: bool = True) -> torch.Tensor:
    r"""Mean over anchors of the poster's

        L_i = -(1 / sum_{j=1..N} w_ij) * sum_{j != i} w_ij * log( exp(<z_i,z_j>/tau) / sum_{k != i} exp(<z_i,z_k>/tau) ),
        w_ij = <p_i, p_j>.

    z: (N, D) embeddings, already L2-normalised; p: (N, P) pmap vectors; tau: temperature.

    The normaliser sum_{j=1..N} w_ij includes the anchor's own weight w_ii, exactly as the poster writes
    it (so an anchor's loss is damped by how concentrated its own pmap vector is). With
    `include_self_weight=False` the normaliser is sum_{j != i} w_ij instead, the SupCon-style weighted
    average of the positives' log-probabilities.

    Computed in float32 whatever the input dtype (bf16 autocast included), with log-sum-exp and the
    diagonal masked before it, so no log(0). An anchor whose weights to all others are zero has no
    positives and is left out of the mean; if no anchor is left the loss is 0 with a zero gradient.
    """
    if z.shape[0] < 2:
        return z.sum() * 0.0
    losses, valid = anchor_losses(z, p, z, p, 0, tau, include_self_weight)
    if not bool(valid.any()):
        return z.sum() * 0.0
    return losses[valid].mean()
