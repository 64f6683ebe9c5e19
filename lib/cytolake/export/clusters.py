"""A data-driven parcellation (the poster's future work): k-means over node features, scored against the
true areas with the adjusted Rand index and normalised mutual information."""

from __future__ import annotations

import numpy as np
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score
from sklearn.preprocessing import StandardScaler


def reduced(features: np.ndarray, components: int = 50) -> np.ndarray:
    """Standardised leading principal components of the features (clustering in 2048 dimensions is noise)."""
    k = min(components, *features.shape)
    return StandardScaler().fit_transform(PCA(k, random_state=0).fit_transform(features))


def cluster_scores(features: np.ndarray, labels: np.ndarray, ks: tuple[int, ...], seed: int = 0) -> list[dict]:
    """Per k: the k-means assignment of every node, and ARI/NMI against `labels` over the annotated nodes."""
    z = reduced(features)
    lab = labels >= 0
    out = []
    for k in ks:
        if k >= len(z):
            continue
        assign = KMeans(k, n_init=3, random_state=seed).fit_predict(z)
        out.append({"k": k, "assign": assign, "ari": float(adjusted_rand_score(labels[lab], assign[lab])),
                    "nmi": float(normalized_mutual_info_score(labels[lab], assign[lab]))})
    return out
