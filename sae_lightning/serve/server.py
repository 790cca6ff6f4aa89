"""Serving the app: load the runs, then run uvicorn on a socket bound here (port 0 picks a free
one), in the foreground (sae-serve) or in a thread (tests, the load benchmark)."""

from __future__ import annotations

import errno
import socket
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import uvicorn

from ..errors import UserError
from .app import Served, create_app
from .settings import ServeSettings, serve_settings
from .state import ServedRun, run_names


def load_served(paths: Sequence[str | Path], settings: ServeSettings | None = None) -> Served:
    """Every run loaded once (SAE, store, model, activations); UserError naming a bad one."""
    settings = settings or serve_settings()
    found = [Path(p).expanduser().resolve() for p in paths]
    if not found:
        raise UserError("give at least one run folder: sae-serve <run> [<run> ...]")
    dupes = {p for p in found if found.count(p) > 1}
    if dupes:
        raise UserError(f"{sorted(dupes)[0]} is given twice; give each run once")
    return Served([ServedRun(name, path, settings) for name, path in zip(run_names(found), found)], settings)


def bind(host: str, port: int) -> socket.socket:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as err:  # UnicodeError: a name part over 63 characters
        reason = err.strerror if isinstance(err, socket.gaierror) else "not a host name"
        raise UserError(f"--host {host}: cannot be resolved ({reason}); give an address such as 127.0.0.1") from None
    family, _, _, _, addr = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(addr)
    except OSError as err:
        sock.close()
        # an address that is not this machine's: another port would fail the same way
        fix = "give --host an address of this machine, e.g. 127.0.0.1" if err.errno == errno.EADDRNOTAVAIL else ""
        raise UserError(f"cannot listen on {host}:{port} ({err.strerror}); {fix or 'give another --port'}") from None
    sock.listen(2048)  # from here on connections queue, even before uvicorn starts accepting them
    return sock


def make_server(served: Served, log_level: str = "warning") -> uvicorn.Server:
    return uvicorn.Server(
        uvicorn.Config(create_app(served), log_level=log_level, access_log=False, timeout_graceful_shutdown=2)
    )


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://{'[' + host + ']' if ':' in host else host}:{port}"


@contextmanager
def running(served: Served, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """The app served from a thread for as long as the block runs; yields its base URL."""
    sock = bind(host, port)
    server = make_server(served)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started and thread.is_alive():
        threading.Event().wait(0.02)
    try:
        yield url_of(sock)
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
