"""The progress bar of ``Batch.wait(progress=True)``, with rate and ETA over a sliding window.

The rate counts only units finished within the last :data:`WINDOW_SECONDS`, so a batch that was
half done before the watch began does not show an inflated rate.
"""

from __future__ import annotations

import sys
from collections import deque
from typing import TextIO

from .models import BatchStatus

__all__ = ["ProgressBar", "SlidingRate", "WINDOW_SECONDS", "progress_line"]

#: How far back the rate looks.
WINDOW_SECONDS = 30.0
#: Width of the bar in characters.
BAR_WIDTH = 24
#: Without a terminal, print a line at most this often (and whenever the batch ends).
PLAIN_EVERY_SECONDS = 2.0


class SlidingRate:
    """Units finished per second over the last ``window`` seconds of samples."""

    def __init__(self, window: float = WINDOW_SECONDS) -> None:
        self._window = window
        self._samples: deque[tuple[float, int]] = deque()

    def add(self, now: float, finished: int) -> None:
        """Records that ``finished`` units were over at time ``now`` (seconds, monotonic)."""
        self._samples.append((now, finished))
        # Keep one sample at or before the window's start, so the window is always spanned.
        while len(self._samples) > 2 and self._samples[1][0] <= now - self._window:
            self._samples.popleft()

    def per_second(self) -> float | None:
        """The rate, or None before two samples a moment apart exist."""
        if len(self._samples) < 2:
            return None
        (start, first), (end, last) = self._samples[0], self._samples[-1]
        if end - start <= 0:
            return None
        return max(last - first, 0) / (end - start)


def progress_line(status: BatchStatus, rate: float | None) -> str:
    """``[######------] 12/30 done, 0 failed, 4 running, 3.1/s, ETA 6 s``"""
    counts = status.counts
    total = max(counts.total, 1)
    filled = counts.finished * BAR_WIDTH // total
    remaining = counts.total - counts.finished
    if rate is None:
        speed, eta = "--/s", "--"
    else:
        speed = f"{rate:.1f}/s"
        eta = f"{remaining / rate:.0f} s" if rate > 0 and remaining else "--"
    line = (
        f"[{'#' * filled}{'-' * (BAR_WIDTH - filled)}] {counts.done}/{counts.total} done, "
        f"{counts.failed} failed, {counts.running} running, {speed}, ETA {eta}"
    )
    if status.hosts_able == 0:
        line += "; no online volunteer can take the waiting units"
    return line


class ProgressBar:
    """Draws :func:`progress_line` on a stream: redrawn in place on a terminal, otherwise one
    line every :data:`PLAIN_EVERY_SECONDS` when it changed, and a last one at the end."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream if stream is not None else sys.stderr
        self._terminal = self._stream.isatty()
        self._rate = SlidingRate()
        self._last_line = ""
        self._last_print: float | None = None

    def update(self, status: BatchStatus, now: float) -> None:
        """Shows ``status`` as seen at ``now`` (seconds, monotonic)."""
        self._rate.add(now, status.counts.finished)
        line = progress_line(status, self._rate.per_second())
        if self._terminal:
            self._stream.write(f"\r{line}\x1b[K")
            if status.is_over:
                self._stream.write("\n")
        elif status.is_over or (
            line != self._last_line
            and (self._last_print is None or now - self._last_print >= PLAIN_EVERY_SECONDS)
        ):
            self._stream.write(line + "\n")
            self._last_print = now
        self._stream.flush()
        self._last_line = line
