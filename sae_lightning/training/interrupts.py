"""Ctrl-C and SIGTERM without losing work: during training a signal is only remembered, and the
StopOnSignal callback acts on it at the next batch (or epoch) end, where the loop's state is one a
checkpoint can resume exactly; outside training it stops the command at once (every file is
written atomically, so nothing is left half-way). The command then exits 128 + the signal number
(130 for Ctrl-C, 143 for SIGTERM), so a scheduler or an `&&` chain never takes the run as done."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class RunInterrupted(BaseException):
    """A BaseException, like KeyboardInterrupt, so that no `except Exception` swallows it."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = int(signum)
        self.exit_code = 128 + self.signum


class DeferredSignals:
    """Installs the handlers for its `with` block (main thread only) and restores the old ones."""

    def __init__(self) -> None:
        self.received: int | None = None
        self.deferring = False
        self._previous: dict[int, object] = {}

    def _handle(self, signum: int, frame) -> None:
        if not self.deferring:
            raise RunInterrupted(signum)
        self.received = signum

    def __enter__(self) -> DeferredSignals:
        if threading.current_thread() is threading.main_thread():
            for sig in SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    @contextlib.contextmanager
    def deferred(self) -> Iterator[None]:
        self.deferring = True
        try:
            yield
        finally:
            self.deferring = False
        if self.received is not None:  # arrived after the last chance inside the loop
            raise RunInterrupted(self.received)
