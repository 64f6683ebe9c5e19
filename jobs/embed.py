"""Embed every patch that has no current features for a model: Spark batch inference (the encoder
loaded once per executor, batched, on the executor's GPU when it has one) into the `features` table.

    python jobs/embed.py --config conf/local.yaml [--model contrastive-pmap-v1]
    python jobs/embed.py --model random-init        # the untrained baseline, created on first use

Rerunning on an unchanged lake embeds nothing and commits nothing.
"""

from cytolake.embed.job import run_embed
from cytolake.engines.spark import spark_session
from cytolake.runner import lake_writer, parser, settings


def main() -> int:
    p = parser(__doc__)
    p.add_argument("--model", help="model version under paths.models (default: train.model_version)")
    a = p.parse_args()
    cfg = settings(a.config)
    with lake_writer(cfg, "embed", a.wait):
        run_embed(cfg, spark_session(cfg.spark), a.model or cfg.train.model_version)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
