"""sae-serve: a local web app over finished runs (Features, Feature pages, Search with steering,
Domains). Flag defaults: conf/serve.yaml (127.0.0.1 unless told otherwise: the app has no login,
and a run's texts are the user's data)."""

from __future__ import annotations

from ..cli import plain_command
from ..command_parser import CommandParser
from ..runtime import RuntimeSettings, apply
from .settings import serve_settings


def build_parser() -> CommandParser:
    defaults = serve_settings()
    p = CommandParser(
        prog="sae-serve",
        description="Explore finished runs in the browser: features, "
        "search and steering, domain diffs. Read-only on the runs.",
    )
    p.add_argument(
        "runs",
        nargs="+",
        metavar="RUN",
        help="finished, labelled run folders (several: each feature's "
        "counterpart in the others is shown, by sae-compare's matching)",
    )
    p.add_argument(
        "--host", default=defaults.host, help=f"address to listen on (default {defaults.host}; conf/serve.yaml)"
    )
    p.add_argument("--port", type=int, default=defaults.port, help=f"port (default {defaults.port}; 0: any free one)")
    return p


def _main(argv: list[str]) -> None:
    a = build_parser().parse_args(argv)
    from .server import bind, load_served, make_server, url_of  # here: Ctrl-C while it loads is one line

    settings = serve_settings(host=a.host, port=a.port)
    # A long-lived server gives freed memory back (no kept heap), and each of its compute workers
    # runs torch on one thread (conf/serve.yaml: one worker per core).
    apply(RuntimeSettings(keep_freed_mib=0, torch_threads=settings.torch_threads))
    sock = bind(settings.host, settings.port)  # refuse a taken port before minutes of loading
    served = load_served(a.runs, settings)
    print(f"sae-serve: {len(served.runs)} run(s) at {url_of(sock)}/  (Ctrl-C stops)", flush=True)
    make_server(served).run(sockets=[sock])


main = plain_command(_main)
main.__doc__ = "sae-serve: explore finished runs in the browser."
