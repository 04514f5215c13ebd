"""Progress bars for long steps (engine builds, calibration) on stderr.

Shown when stderr is a terminal, hidden otherwise (logs, CI, pipes); TFTRT_PROGRESS=1
or 0 forces them on or off. A bar redraws itself twice a second, so its clock moves
while one long engine build runs.
"""

from __future__ import annotations

import sys
import threading
from typing import Any

import tftrt.env as env

REFRESH_S = 0.5


def enabled() -> bool:
    """Whether bars are shown: TFTRT_PROGRESS, else whether stderr is a terminal."""
    forced = env.get("TFTRT_PROGRESS")
    if forced is not None:
        return forced
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


class Bar:
    """A tqdm bar on stderr, hidden unless ``enabled()``; use as a context manager or
    call ``close()``."""

    def __init__(self, desc: str, total: int | None = None, unit: str = "it") -> None:
        from tqdm import tqdm

        self.shown = enabled()
        self._tqdm = tqdm(desc=desc, total=total, unit=unit, leave=True,
                          disable=not self.shown, file=sys.stderr, dynamic_ncols=True)
        self._stop = threading.Event()
        self._ticker = None
        if self.shown:
            self._ticker = threading.Thread(target=self._tick, name="tftrt-progress",
                                            daemon=True)
            self._ticker.start()

    def _tick(self) -> None:
        while not self._stop.wait(REFRESH_S):
            self._tqdm.refresh()

    def set_total(self, total: int) -> None:
        """The number of steps, once known."""
        self._tqdm.total = total
        self._tqdm.refresh()

    def update(self, n: int = 1) -> None:
        self._tqdm.update(n)

    def note(self, text: str) -> None:
        """Show ``text`` after the counts (e.g. what is being built)."""
        self._tqdm.set_postfix_str(text, refresh=self.shown)

    def close(self) -> None:
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join()
            self._ticker = None
        self._tqdm.close()

    def __enter__(self) -> Bar:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


bar = Bar
