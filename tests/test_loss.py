"""The pmap-weighted contrastive loss against a naive float64 double loop of the poster's formula."""

import math

import pytest
import torch

from cytolake.train.loss import pmap_contrastive_loss


def reference(z, p, tau, include_self_weight=True):
    """The formula, term by term, in float64 Python loops."""
    n = z.shape[0]
    losses = []
    for i in range(n):
        w = [float(torch.dot(p[i], p[j])) for j in range(n)]
        if sum(w[j] for j in range(n) if j != i) <= 0:
            continue
        denom = sum(math.exp(float(torch.dot(z[i], z[k])) / tau) for k in range(n) if k != i)
        s = sum(w[j] * math.log(math.exp(float(torch.dot(z[i], z[j])) / tau) / denom) for j in range(n) if j != i)
        norm = sum(w) if include_self_weight else sum(w[j] for j in range(n) if j != i)
        losses.append(-s / norm)
    return sum(losses) / len(losses) if losses else 0.0


def reference_torch(z, p, tau, include_self_weight=True):
    """The same loops in torch float64 ops, for autograd."""
    n = z.shape[0]
    terms = []
    for i in range(n):
        w = torch.stack([torch.dot(p[i], p[j]) for j in range(n)])
        others = w.sum() - w[i]
        if others <= 0:
            continue
        denom = sum(torch.exp(torch.dot(z[i], z[k]) / tau) for k in range(n) if k != i)
        s = sum(w[j] * torch.log(torch.exp(torch.dot(z[i], z[j]) / tau) / denom) for j in range(n) if j != i)
        terms.append(-s / (w.sum() if include_self_weight else others))
    return torch.stack(terms).mean()


def sample(n, d, areas, seed, zero_rows=()):
    g = torch.Generator().manual_seed(seed)
    z = torch.nn.functional.normalize(torch.randn(n, d, generator=g, dtype=torch.float64), dim=1)
    p = torch.rand(n, areas, generator=g, dtype=torch.float64) * (torch.rand(n, areas, generator=g) < 0.3)
    for r in zero_rows:
        p[r] = 0
    return z, p


@pytest.mark.parametrize("n,d,areas,tau,zero_rows", [(2, 4, 3, 0.1, ()), (7, 16, 5, 0.5, (0, 3)), (16, 8, 12, 0.07, (5,)),
                                                     (33, 32, 40, 1.0, ()), (9, 3, 2, 0.2, (1, 2, 3, 4))])
@pytest.mark.parametrize("self_weight", [True, False])
def test_loss_equals_naive_formula_and_gradient(n, d, areas, tau, zero_rows, self_weight):
    z, p = sample(n, d, areas, seed=n * 31 + areas, zero_rows=zero_rows)
    ref = reference(z, p, tau, self_weight)
    got = pmap_contrastive_loss(z.float(), p.float(), tau, self_weight)
    assert abs(got.item() - ref) <= 1e-6 * max(1.0, abs(ref))
    z64 = z.clone().requires_grad_(True)
    reference_torch(z64, p, tau, self_weight).backward()
    z32 = z.float().clone().requires_grad_(True)
    pmap_contrastive_loss(z32, p.float(), tau, self_weight).backward()
    assert torch.allclose(z32.grad.double(), z64.grad, atol=1e-5)


def test_all_anchors_without_positives_give_zero_loss_and_zero_grad():
    z, p = sample(6, 4, 5, seed=3)
    p[:] = 0
    p[0, 1] = 1.0  # one anchor with a pmap, but nobody shares it
    zz = z.float().requires_grad_(True)
    loss = pmap_contrastive_loss(zz, p.float(), 0.1)
    loss.backward()
    assert loss.item() == 0.0 and torch.equal(zz.grad, torch.zeros_like(zz))
    one = z[:1].float().requires_grad_(True)
    assert pmap_contrastive_loss(one, p[:1].float(), 0.1).item() == 0.0


def test_stable_in_bf16_and_at_tiny_temperature():
    z, p = sample(64, 32, 20, seed=5)
    loss = pmap_contrastive_loss(z.to(torch.bfloat16), p.to(torch.bfloat16), 0.01)
    assert torch.isfinite(loss)
    ref = reference(z, p, 0.01)
    assert abs(loss.item() - ref) / abs(ref) < 0.05  # bf16 inputs, float32 arithmetic
    zz = z.float().requires_grad_(True)
    pmap_contrastive_loss(zz, p.float(), 1e-3).backward()
    assert torch.isfinite(zz.grad).all()


def test_similarity_follows_pmap_correlation():
    """Gradient descent on the loss orders each anchor's similarities by pmap correlation. (The optimum is a
    soft target: the softmax over the others matches the normalised weights, so the pull is not a collapse.)"""
    torch.manual_seed(0)
    p = torch.tensor([[1.0, 0], [0.9, 0.1], [0, 1.0], [0.1, 0.9]])
    raw = torch.randn(4, 8, requires_grad=True)
    opt = torch.optim.SGD([raw], lr=0.5)
    for _ in range(400):
        opt.zero_grad()
        pmap_contrastive_loss(torch.nn.functional.normalize(raw, dim=1), p, 0.2).backward()
        opt.step()
    z = torch.nn.functional.normalize(raw, dim=1).detach()
    s = z @ z.T
    assert s[0, 1] > s[0, 3] > s[0, 2] and s[2, 3] > s[2, 1] > s[2, 0]
    # at the optimum, z0.z1 - z0.z3 = tau * log(w01 / w03) = 0.2 * log(9)
    assert abs(float(s[0, 1] - s[0, 3]) - 0.2 * math.log(9)) < 0.02
