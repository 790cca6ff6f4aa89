"""Ctrl-C and SIGTERM without losing work: during training a signal is only remembered, and the
StopOnSignal callback acts on it at the next batch (or epoch) end, where the loop's state is one a
checkpoint can resume exactly; outside training it stops the command at once (every file is
written atomically, so nothing is left half-way). The command then exits 128 + the signal number
(130 for Ctrl-C, 143 for SIGTERM), so a scheduler or an `&&` chain never takes the run as done."""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class RunInterrupted(BaseException):
    """A BaseException, like KeyboardInterrupt, so that no `except Exception` swallows it."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = int(signum)
        self.exit_code = 128 + self.signum


class _Resend:
    """A signal that landed in a finaliser, to be sent again once: by a timer a moment later, or by
    raise_pending where the command reaches its end first (the timer's signal then came after the
    handlers were put back: the Ctrl-C was lost, or the exit status was 0). Whichever comes first
    takes it, under one lock, so it is delivered exactly once."""

    def __init__(self) -> None:
        self.lock, self.signum = threading.Lock(), None

    def later(self, signum: int) -> None:
        with self.lock:
            self.signum = signum
        timer = threading.Timer(0.05, self._fire)
        timer.daemon = True  # never holds the interpreter's exit
        timer.start()

    def take(self) -> int | None:
        with self.lock:
            signum, self.signum = self.signum, None
        return signum

    def _fire(self) -> None:
        signum = self.take()
        if signum is not None:
            os.kill(os.getpid(), signum)


_RESEND = _Resend()


def resent_from_finaliser(signum: int, frame) -> bool:
    """Whether the signal landed in a finaliser (`__del__`, which the garbage collector runs
    anywhere: regex's Group.__del__ in sae-label's KeyBERT phase) and is sent again a moment later.
    An exception raised there is printed as "Exception ignored in ..." and dropped: the command went
    on to its end as if no Ctrl-C had come, exit status 0."""
    while frame is not None and frame.f_code.co_name != "__del__":
        frame = frame.f_back
    if frame is None:
        return False
    _RESEND.later(signum)
    return True


def _raise(signum: int) -> None:
    if signum == signal.SIGINT:
        raise KeyboardInterrupt
    raise RunInterrupted(signum)


def _interrupt(signum: int, frame) -> None:
    if not resent_from_finaliser(signum, frame):
        _RESEND.take()  # this one stops the command: a resend still waiting is the same signal
        _raise(signum)


def raise_pending() -> None:
    """Raise a signal still waiting to be sent again (the command got to its end first)."""
    signum = _RESEND.take()
    if signum is not None:
        _raise(signum)


def stopping_on_signals() -> Callable[[], None]:
    """Ctrl-C raises KeyboardInterrupt and SIGTERM RunInterrupted (main thread only; a signal the
    process ignores, such as SIGINT of a background job, stays ignored) until the returned function
    puts the old handlers back; call raise_pending before it."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = {sig: signal.getsignal(sig) for sig in SIGNALS}
    for sig, handler in previous.items():
        if handler is not signal.SIG_IGN:
            signal.signal(sig, _interrupt)

    def restore() -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    return restore


def ending_at_once() -> bool:
    """For a command whose work is done (cli._interruptible): whether it took over the process's
    end, which it does only where the process is the console script (not a test calling the
    command: that process goes on) and signals are handled here. Python's finalisation (a second or
    two freeing torch and the other modules) ran with the default handlers, under which a SIGTERM
    or Ctrl-C killed the finished command without a word. Now a signal says that everything was
    kept and ends the process, and the process ends right after its atexit functions (logging's
    flush, W&B's), skipping only the freeing of memory that the system does anyway."""
    command = Path(sys.argv[0]).name
    if threading.current_thread() is not threading.main_thread() or not _run_as_console_script():
        return False

    def ended(signum: int, frame) -> None:
        with contextlib.suppress(OSError, ValueError):
            sys.stdout.flush()
        name = signal.Signals(signum).name
        os.write(
            2, f"{command}: {name} after the command had finished; nothing was stopped, all it wrote is kept\n".encode()
        )
        os._exit(128 + signum)

    for sig in SIGNALS:
        if signal.getsignal(sig) is not signal.SIG_IGN:  # a background job's Ctrl-C stays ignored
            signal.signal(sig, ended)

    def exit_now() -> None:  # registered last, so run first: it runs the others, then ends
        atexit.unregister(exit_now)
        atexit._run_exitfuncs()
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
        os._exit(0)

    atexit.register(exit_now)
    return True


def _run_as_console_script() -> bool:
    """Whether Python runs one of this package's console scripts (pyproject's [project.scripts]) as
    __main__: not pytest (whose tests call the commands and set sys.argv), `python -c` or a notebook."""
    from importlib.metadata import entry_points

    main = getattr(sys.modules["__main__"], "__file__", None)
    if not main or Path(main).name != Path(sys.argv[0]).name:
        return False
    ours = {ep.name for ep in entry_points(group="console_scripts") if ep.value.startswith("sae_lightning.")}
    return Path(main).name in ours


class DeferredSignals:
    """Installs the handlers for its `with` block (main thread only) and restores the old ones."""

    def __init__(self) -> None:
        self.received: int | None = None
        self.deferring = False
        self._previous: dict[int, object] = {}

    def _handle(self, signum: int, frame) -> None:
        if self.deferring:
            self.received = signum
        elif not resent_from_finaliser(signum, frame):
            _RESEND.take()
            raise RunInterrupted(signum)

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
