"""Background: a call run on a thread of its own while the caller goes on (dedup's signature MERGE beside
the driver's banding, ingest's Delta warm-up beside the parse)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any


class Background:
    """A call run on a thread of its own: start() begins it (once), result() waits and returns its value
    or raises its error, wait() waits without raising (for a `finally`, when something else failed)."""

    def __init__(self, what: str, call: Callable[[], Any]):
        self.what, self.call = what, call
        self.seconds = 0.0
        self._thread: threading.Thread | None = None
        self._out: tuple[bool, Any] = (False, None)

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=self.what, daemon=True)
            self._thread.start()

    def _run(self) -> None:
        t0 = time.time()
        try:
            self._out = (True, self.call())
        except BaseException as e:  # handed to result() in the calling thread
            self._out = (False, e)
        self.seconds = time.time() - t0

    def wait(self) -> None:
        if self._thread is not None:
            self._thread.join()

    def result(self) -> Any:
        self.start()
        self.wait()
        ok, value = self._out
        if not ok:
            raise value
        return value
