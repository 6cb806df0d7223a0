"""Progress on stderr for work that may take more than ~2 s: the one helper every subcommand uses.

Library functions report through a plain callable, ``progress(done, total, stage)`` (``total`` None:
unknown). :class:`Progress` is that callable: it draws ``DESC: STAGE`` with a bar when the total is
known, else the elapsed time, on stderr, refreshed every :data:`TICK` seconds by a thread so that one
slow step still shows the clock moving. Nothing is drawn during the first :data:`DELAY` seconds (quick
work stays silent), nothing at all when disabled (``--quiet``), never anything on stdout (so ``--json``
output stays one object), and the line is cleared when the work ends.
"""

from __future__ import annotations

import sys
import threading
import time
from types import TracebackType

from tqdm.auto import tqdm

#: Seconds before anything is drawn, and between redraws (on a terminal; into a file or pipe: TICK_FILE).
DELAY = 1.0
TICK = 0.5
TICK_FILE = 10.0
#: The line without a known total (description, elapsed time), and with one.
STATUS_FORMAT = "{desc} [{elapsed}]"
BAR_FORMAT = "{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} {unit} [{elapsed}]"


class Progress:
    """``with Progress("contraction", enabled=not args.quiet) as p: work(progress=p)``."""

    def __init__(self, desc: str, *, enabled: bool = True, unit: str = "it"):
        self.desc, self.enabled, self.unit = desc, enabled, unit
        self._bar: tqdm | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None
        self._t0 = 0.0

    def __enter__(self) -> Progress:
        self._t0 = time.monotonic()
        if self.enabled:
            self._bar = tqdm(
                total=None,
                desc=self.desc,
                unit=self.unit,
                file=sys.stderr,
                leave=False,
                dynamic_ncols=True,
                delay=DELAY,
                bar_format=STATUS_FORMAT,
            )
            self._ticker = threading.Thread(target=self._tick, name="newllm-progress", daemon=True)
            self._ticker.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join()
        if self._bar is not None:
            with self._lock:
                self._bar.close()
            self._bar = None

    def __call__(self, done: int, total: int | None = None, stage: str = "") -> None:
        """Record ``done`` of ``total`` units of ``stage`` (redrawn now when the delay has passed)."""
        bar = self._bar
        if bar is None:
            return
        with self._lock:
            desc = f"{self.desc}: {stage}" if stage else self.desc
            if desc != bar.desc:
                bar.set_description_str(desc, refresh=False)
            if total != bar.total:
                bar.total = total
                bar.bar_format = BAR_FORMAT if total else STATUS_FORMAT
            bar.n = done
        self._draw()

    def _draw(self) -> None:
        bar = self._bar
        if bar is None or time.monotonic() - self._t0 < DELAY:
            return
        with self._lock:
            bar.refresh()
            bar.last_print_t = bar._time()  # drawn: close() clears the line

    def _tick(self) -> None:
        isatty = getattr(sys.stderr, "isatty", lambda: False)
        tick = TICK if isatty() else TICK_FILE
        while not self._stop.wait(tick):
            self._draw()
