"""Overall progress of a job made of stages of similar cost: one line a stage, 'stage k of n', with the time
elapsed and an estimate of the time left (the mean stage so far times the stages left)."""

from __future__ import annotations

import time
from collections.abc import Callable


def _clock(seconds: float) -> str:
    m, s = divmod(int(round(seconds)), 60)
    return f"{m // 60}:{m % 60:02d}:{s:02d}" if m >= 60 else f"{m}:{s:02d}"


class Stages:
    def __init__(self, job: str, total: int, log: Callable[[str], None] = print,
                 clock: Callable[[], float] = time.monotonic):
        self.job, self.total, self.log, self.clock = job, total, log, clock
        self.started, self.done = clock(), 0

    def line(self, what: str) -> str:
        """The line for the next stage (`what`), counting it as begun."""
        elapsed = self.clock() - self.started
        left = "" if not self.done else f", about {_clock(elapsed / self.done * (self.total - self.done))} left"
        self.done += 1
        return f"{self.job}: stage {self.done} of {self.total}: {what} ({_clock(elapsed)} elapsed{left})"

    def __call__(self, what: str) -> None:
        self.log(self.line(what))
