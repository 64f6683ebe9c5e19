"""Write synthetic brains (tiled BigTIFF sections, manifest, annotations, truth) into paths.landing.

    python jobs/synthesize.py --config conf/local.yaml [--brains N] [--workers W]
"""

from cytolake.runner import parser, settings
from cytolake.synth.job import run_synthesize


def main() -> int:
    p = parser(__doc__, writes_lake=False)
    p.add_argument("--brains", type=int, help="number of brains (default: synth.brains)")
    p.add_argument("--workers", type=int, help="rendering processes (default: all cores)")
    a = p.parse_args()
    run_synthesize(settings(a.config), a.brains, a.workers)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
