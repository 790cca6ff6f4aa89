"""sae-serve: a local web app over finished runs (Features, Feature pages, Search with steering,
Domains). Binds 127.0.0.1 unless told otherwise: the app has no login, and a run's texts are
the user's data."""
from __future__ import annotations

import argparse

from ..cli import _plain_command
from .server import DEFAULT_HOST, DEFAULT_PORT, bind, load_served, make_server, url_of


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sae-serve", description="Explore finished runs in the browser: features, "
                                "search and steering, domain diffs. Read-only on the runs.")
    p.add_argument("runs", nargs="+", metavar="RUN", help="finished, labelled run folders (several: each feature's "
                   "counterpart in the others is shown, by sae-compare's matching)")
    p.add_argument("--host", default=DEFAULT_HOST, help=f"address to listen on (default {DEFAULT_HOST}: this machine only)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT}; 0: any free one)")
    return p


def _main(argv: list[str]) -> None:
    a = build_parser().parse_args(argv)
    sock = bind(a.host, a.port)  # refuse a taken port before minutes of loading
    served = load_served(a.runs)
    print(f"sae-serve: {len(served.runs)} run(s) at {url_of(sock)}/  (Ctrl-C stops)", flush=True)
    make_server(served).run(sockets=[sock])


main = _plain_command(_main)
main.__doc__ = "sae-serve: explore finished runs in the browser."
