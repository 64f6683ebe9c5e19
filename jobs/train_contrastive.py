"""Train the encoder (`train.backbone`) with the pmap-weighted contrastive loss on the `patches` table
(cont-pmap), or the same architecture on the labelled patches with the contrastive loss on one-hot labels
(--objective contrastive-label: cont-sup) or cross-entropy (--objective supervised: sup).

    python jobs/train_contrastive.py --config conf/local.yaml                  # one process
    torchrun --nproc_per_node=N jobs/train_contrastive.py --config ...          # torch.distributed (gloo / nccl)
    horovodrun -np N python jobs/train_contrastive.py --config ...              # Horovod

    python jobs/train_contrastive.py --objective supervised --model-version supervised-v1
    python jobs/train_contrastive.py --objective contrastive-label --model-version contrastive-sup-v1

Resumes from paths.models/<model_version>/checkpoint.pt when one exists.
"""

from cytolake.runner import parser, settings
from cytolake.train.dist import detect
from cytolake.train.job import run_train_contrastive


def main() -> int:
    p = parser(__doc__, writes_lake=False)
    p.add_argument("--max-steps", type=int, help="stop after this many steps (overrides train.max_steps)")
    p.add_argument("--objective", choices=["contrastive", "contrastive-label", "supervised"], help="overrides train.objective")
    p.add_argument("--model-version", help="overrides train.model_version (the folder under paths.models)")
    a = p.parse_args()
    cfg = settings(a.config)
    overrides = {k: v for k, v in {"max_steps": a.max_steps, "objective": a.objective,
                                   "model_version": a.model_version}.items() if v is not None}
    cfg = cfg.model_copy(update={"train": cfg.train.model_copy(update=overrides)})
    dist = detect()
    try:
        run_train_contrastive(cfg, dist, log=print if dist.rank == 0 else (lambda *x: None))
    finally:
        dist.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
