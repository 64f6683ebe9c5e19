"""The seam between the training loop and its launcher: plain `python`, `torchrun` (torch.distributed:
gloo on CPU, nccl on GPU) or `horovodrun` (Horovod). The loop only calls the methods below.

`gather` is the all-gather with correct gradients. Each rank computes the loss for its own anchors
against the whole global batch, so every rank's embeddings receive gradient from every rank's loss;
the backward must therefore all-reduce (sum) the incoming gradient before taking this rank's slice.
The widespread bug is to return only the local slice, which silently drops the other ranks'
contributions.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as tdist


class Single:
    name = "single"
    rank, world, local_rank = 0, 1, 0

    def gather(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def gather_nograd(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def sum(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def average_gradients(self, model: torch.nn.Module) -> None:
        pass

    def broadcast_parameters(self, model: torch.nn.Module) -> None:
        pass

    def barrier(self) -> None:
        pass

    def shutdown(self) -> None:
        pass


class _GatherTorch(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        parts = [torch.empty_like(x) for _ in range(tdist.get_world_size())]
        tdist.all_gather(parts, x.contiguous())
        ctx.n = x.shape[0]
        return torch.cat(parts)

    @staticmethod
    def backward(ctx, grad):
        grad = grad.contiguous().clone()
        tdist.all_reduce(grad, op=tdist.ReduceOp.SUM)
        r = tdist.get_rank()
        return grad[r * ctx.n:(r + 1) * ctx.n]


class _GatherHorovod(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, hvd):
        ctx.n, ctx.hvd = x.shape[0], hvd
        return hvd.allgather(x.detach())

    @staticmethod
    def backward(ctx, grad):
        hvd = ctx.hvd
        grad = hvd.allreduce(grad.contiguous(), op=hvd.Sum)
        r = hvd.rank()
        return grad[r * ctx.n:(r + 1) * ctx.n], None


class TorchDistributed(Single):
    name = "torchrun"

    def __init__(self, backend: str | None = None):
        backend = backend or ("nccl" if torch.cuda.is_available() else "gloo")
        tdist.init_process_group(backend)
        self.rank, self.world = tdist.get_rank(), tdist.get_world_size()
        self.local_rank = int(os.environ.get("LOCAL_RANK", 0))

    def gather(self, x):
        return _GatherTorch.apply(x)

    def gather_nograd(self, x):
        parts = [torch.empty_like(x) for _ in range(self.world)]
        tdist.all_gather(parts, x.contiguous())
        return torch.cat(parts)

    def sum(self, x):
        x = x.clone()
        tdist.all_reduce(x, op=tdist.ReduceOp.SUM)
        return x

    def average_gradients(self, model):
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        if not grads:
            return
        flat = torch.cat([g.reshape(-1) for g in grads])
        tdist.all_reduce(flat, op=tdist.ReduceOp.SUM)
        flat /= self.world
        i = 0
        for g in grads:
            g.copy_(flat[i:i + g.numel()].view_as(g))
            i += g.numel()

    def broadcast_parameters(self, model):
        for t in list(model.parameters()) + list(model.buffers()):
            tdist.broadcast(t.data, 0)

    def barrier(self):
        tdist.barrier()

    def shutdown(self):
        tdist.destroy_process_group()


class Horovod(Single):
    name = "horovodrun"

    def __init__(self):
        import horovod.torch as hvd

        hvd.init()
        self.hvd = hvd
        self.rank, self.world, self.local_rank = hvd.rank(), hvd.size(), hvd.local_rank()

    def gather(self, x):
        # Not hvd.allgather's own backward: it averages the gradient over ranks (a 1/world scaling).
        return _GatherHorovod.apply(x, self.hvd)

    def gather_nograd(self, x):
        return self.hvd.allgather(x.detach())

    def sum(self, x):
        return self.hvd.allreduce(x, op=self.hvd.Sum)

    def average_gradients(self, model):
        handles = [self.hvd.allreduce_async_(p.grad, op=self.hvd.Average, name=f"g{i}")
                   for i, p in enumerate(model.parameters()) if p.grad is not None]
        for h in handles:
            self.hvd.synchronize(h)

    def broadcast_parameters(self, model):
        self.hvd.broadcast_parameters(model.state_dict(), root_rank=0)

    def barrier(self):
        self.hvd.allreduce(torch.zeros(1), name="barrier")

    def shutdown(self):
        self.hvd.shutdown()


def detect():
    """The launcher this process runs under: horovodrun sets HOROVOD_RANK, torchrun sets RANK and WORLD_SIZE."""
    if "HOROVOD_RANK" in os.environ:
        return Horovod()
    if "RANK" in os.environ and "WORLD_SIZE" in os.environ:
        return TorchDistributed()
    return Single()
