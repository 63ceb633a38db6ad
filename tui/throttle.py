"""Run a callback at most once per interval: now if the last run is old enough, else once later.

Screens read run directories several times a second but redraw less often; the interval is an app
attribute (e.g. `plot_interval`) so tests can set it to 0.
"""

from __future__ import annotations

import time
from typing import Callable

from textual.dom import DOMNode


class Throttle:
    def __init__(self, owner: DOMNode, interval_attr: str, callback: Callable[[], None], default: float = 1.0) -> None:
        self.owner = owner
        self.interval_attr = interval_attr
        self.callback = callback
        self.default = default
        self._last = 0.0
        self._pending = False

    def request(self) -> None:
        if self._pending:
            return
        interval = getattr(self.owner.app, self.interval_attr, self.default)
        wait = self._last + interval - time.monotonic()
        if wait <= 0:
            self._run()
        else:
            self._pending = True
            self.owner.set_timer(wait, self._run)

    def _run(self) -> None:
        self._pending = False
        self._last = time.monotonic()
        self.callback()
