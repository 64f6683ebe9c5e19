"""The probability-guided contrastive loss of the seed (Schiffer et al., poster "Contrastive Learning from
Probabilistic Maps for Cytoarchitectonic Classification of the Cortex")."""

from __future__ import annotations

import torch


def pmap_contrastive_loss(z: torch.Tensor, p: torch.Tensor, tau: float, include_self_weight: bool = True) -> torch.Tensor:
    r"""Mean over anchors of the seed's

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
    n = z.shape[0]
    if n < 2:
        return z.sum() * 0.0
    z32, p32 = z.float(), p.float()
    eye = torch.eye(n, dtype=torch.bool, device=z.device)
    logits = (z32 @ z32.T) / tau
    log_prob = logits - torch.logsumexp(logits.masked_fill(eye, float("-inf")), dim=1, keepdim=True)
    w = p32 @ p32.T
    w_others = w.masked_fill(eye, 0.0)
    others = w_others.sum(dim=1)
    norm = w.sum(dim=1) if include_self_weight else others
    valid = others > 0
    if not bool(valid.any()):
        return z.sum() * 0.0
    per_anchor = -(w_others * log_prob.masked_fill(eye, 0.0)).sum(dim=1) / torch.where(valid, norm, torch.ones_like(norm))
    return per_anchor[valid].mean()
