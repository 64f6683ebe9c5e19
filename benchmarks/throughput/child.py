"""What the memory benchmarks share: each stage runs in a fresh process, whose peak RSS is its figure."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _status_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def peak_mb() -> float:
    """This process's peak RSS (since start or `reset_peak`). Not getrusage's ru_maxrss: after fork + exec
    that keeps the parent's peak."""
    return _status_mb("VmHWM")


def reset_peak() -> float:
    """Reset this process's peak RSS (Linux >= 4.0); returns the RSS now."""
    Path("/proc/self/clear_refs").write_text("5")
    return _status_mb("VmRSS")


def run_child(module: str, stage: str, image: Path | None, args: dict) -> dict:
    """`python -m <module> --child <stage>` in a fresh process with only the library and the benchmarks on its
    path; the JSON object it printed last."""
    out = subprocess.run([sys.executable, "-m", module, "--child", stage, "--image", str(image or ""),
                          "--args", json.dumps(args)], capture_output=True, text=True, check=True, cwd=ROOT,
                         env={"PYTHONPATH": f"{ROOT / 'lib'}:{ROOT}", "PATH": "/usr/bin:/bin"})
    return json.loads(out.stdout.strip().splitlines()[-1])
