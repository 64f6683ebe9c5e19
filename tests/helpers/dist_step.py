"""One contrastive training step on a fixed global batch of 8, under whatever launcher runs this file.

    python tests/helpers/dist_step.py OUT [--naive-gather]
    python -m torch.distributed.run --standalone --nproc_per_node=2 tests/helpers/dist_step.py OUT

Each rank takes its share of the batch; rank 0 saves the global loss and the updated parameters.
--naive-gather swaps in the widespread buggy gather (other ranks' embeddings detached), to show the
comparison catches it.
"""

import sys

import torch

from cytolake.train import dist as dist_mod
from cytolake.train.model import Encoder
from cytolake.train.trainer import contrastive_loss_step


def main() -> None:
    out = sys.argv[1]
    dist = dist_mod.detect()
    if "--naive-gather" in sys.argv and dist.world > 1:
        def naive(x, d=dist):
            parts = list(d.gather_nograd(x.detach()).split(x.shape[0]))
            parts[d.rank] = x
            return torch.cat(parts)
        dist.gather = naive
    torch.manual_seed(0)
    model = Encoder(norm="group")  # per-sample normalisation: the step does not depend on how the batch is split
    g = torch.Generator().manual_seed(1)
    x_all = torch.randn(8, 1, 32, 32, generator=g)
    p_all = torch.rand(8, 6, generator=g) * (torch.rand(8, 6, generator=g) < 0.5)
    p_all[3] = 0  # an anchor without positives
    n = 8 // dist.world
    x, p = x_all[dist.rank * n:(dist.rank + 1) * n], p_all[dist.rank * n:(dist.rank + 1) * n]
    dist.broadcast_parameters(model)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    loss, global_loss = contrastive_loss_step(model, x, p, dist, tau=0.2)
    opt.zero_grad()
    loss.backward()
    dist.average_gradients(model)
    opt.step()
    if dist.rank == 0:
        torch.save({"loss": float(global_loss), "world": dist.world,
                    "params": torch.cat([q.detach().reshape(-1) for q in model.parameters()])}, out)
    dist.barrier()
    dist.shutdown()


if __name__ == "__main__":
    main()
