"""Train the ResNet-50 encoder with the pmap-weighted contrastive loss on the `patches` table.

    python jobs/train_contrastive.py --config conf/local.yaml                  # one process
    torchrun --nproc_per_node=N jobs/train_contrastive.py --config ...          # torch.distributed (gloo / nccl)
    horovodrun -np N python jobs/train_contrastive.py --config ...              # Horovod

Resumes from paths.models/<model_version>/checkpoint.pt when one exists.
"""

from cytolake.runner import parser, settings
from cytolake.train.dist import detect
from cytolake.train.trainer import run_train_contrastive


def main() -> int:
    p = parser(__doc__)
    p.add_argument("--max-steps", type=int, help="stop after this many steps (overrides train.max_steps)")
    a = p.parse_args()
    cfg = settings(a.config)
    if a.max_steps is not None:
        cfg = cfg.model_copy(update={"train": cfg.train.model_copy(update={"max_steps": a.max_steps})})
    dist = detect()
    try:
        run_train_contrastive(cfg, dist, log=print if dist.rank == 0 else (lambda *x: None))
    finally:
        dist.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
