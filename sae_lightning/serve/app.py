"""The sae-serve web app (Starlette): routes, one page each, and the error responses.

Every page has a stable URL (/r/<run>/features?verdict=..., /r/<run>/features/<id>,
/r/<run>/search?q=...&clamp=12=0.5, /r/<run>/domains?a=...&b=...). Page loads are plain functions,
which Starlette runs in its thread pool. Searches go to a pool of their own with `compute_workers`
threads (one per core by default), diffs and the domain matrix to one more thread (a Fisher test
over every feature takes a second or two): however many queries are in progress or waiting, they
hold none of the threads page loads run in, and a burst of diffs does not hold up searches. A bad
run, feature, group or parameter answers 4xx with one line of
plain text; an unexpected error answers 500 with one line (the traceback goes to the server's log,
never to the page).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import threading
from concurrent.futures import ThreadPoolExecutor

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse
from starlette.routing import Route

from ..errors import UserError
from ..pages import render
from . import params
from .browse import browse
from .domains_view import DomainDiffs
from .feature_view import feature_page
from .matching import Matcher
from .search_view import search, steered
from .settings import ServeSettings
from .state import RunUnservable, ServedRun

log = logging.getLogger(__name__)
PACKAGE = "sae_lightning.serve"


class Served:
    """The runs of one server, by URL name, with their diff caches and the cross-run matcher."""

    def __init__(self, runs: list[ServedRun], settings: ServeSettings) -> None:
        self.settings = settings
        self.compute = ThreadPoolExecutor(settings.workers, thread_name_prefix="sae-serve-search")
        self.diff_pool = ThreadPoolExecutor(1, thread_name_prefix="sae-serve-diff")
        self.runs = {r.name: r for r in runs}
        self.order = runs
        self.diffs = {r.name: DomainDiffs(r) for r in runs}
        self.matcher = Matcher(runs) if len(runs) > 1 else None
        # Computed once at start (the domain matrices, then the runs' matchings), before a page asks,
        # on a daemon thread: a pool's workers are joined at exit, and a Ctrl-C during a first
        # start's minutes of warming printed its line, then waited for them.
        threading.Thread(target=self._warm, name="sae-serve-warm", daemon=True).start()

    def _warm(self) -> None:
        for diffs in self.diffs.values():
            diffs.warm()
        if self.matcher:
            self.matcher.warm()

    def get(self, name: str) -> ServedRun:
        if name not in self.runs:
            raise params.bad(f"run {name[:60]!r} is not served here; this server has {', '.join(self.runs)}", 404)
        return self.runs[name]


def page(template: str, title: str, served: Served, run: ServedRun | None, current: str, **context) -> HTMLResponse:
    colors = context.pop("colors", None)
    html = render(
        PACKAGE,
        template,
        title=title,
        sections=[],
        colors=colors,
        also=("sae_lightning.diff",),
        runs=list(served.runs),
        run=run,
        current=current,
        labeling=run.labelled().labeling_id if run else "",
        **context,
    )
    return HTMLResponse(html)


def create_app(served: Served) -> Starlette:
    def index(request: Request):
        return page(
            "index.html.j2",
            "sae-serve",
            served,
            None,
            "runs",
            items=[
                {
                    "name": r.name,
                    "path": str(r.path),
                    "d_sae": r.d_sae,
                    "texts": r.acts.n_texts,
                    "domains": r.store_domains,
                    "labeling": labeling_of(r),
                }
                for r in served.order
            ],
        )

    def labeling_of(run: ServedRun) -> str:
        """The index lists every run: one whose folder went away is marked, the others still open."""
        try:
            return run.labelled().labeling_id
        except RunUnservable as err:
            return err.note

    def run_home(request: Request):
        run = served.get(request.path_params["run"])
        return RedirectResponse(f"/r/{run.name}/features", status_code=302)

    def features(request: Request):
        run = served.get(request.path_params["run"])
        ctx = browse(request.query_params, run.labelled().catalog)
        return page("features.html.j2", f"Features · {run.name}", served, run, "features", **ctx)

    def feature(request: Request):
        run = served.get(request.path_params["run"])
        fid = params.feature_id(request.path_params["fid"], run.d_sae)
        others = served.matcher.counterparts(served.order.index(run), fid) if served.matcher else []
        ctx = feature_page(run, fid, others)
        return page("feature.html.j2", f"Feature {fid} · {run.name}", served, run, "features", **ctx)

    async def computed(fn, *args, pool=None):
        return await asyncio.get_running_loop().run_in_executor(pool or served.compute, fn, *args)

    async def search_page(request: Request):
        run = served.get(request.path_params["run"])
        return await computed(
            lambda: page(
                "search.html.j2", f"Search · {run.name}", served, run, "search", **search(request.query_params, run)
            )
        )

    async def search_nearest(request: Request):
        """The nearest-texts part of the Search page alone: what a slider reloads."""
        run = served.get(request.path_params["run"])
        return await computed(
            lambda: page("nearest.html.j2", "", served, run, "search", results=steered(request.query_params, run))
        )

    async def domains(request: Request):
        run = served.get(request.path_params["run"])
        diffs = served.diffs[run.name]
        a, b = diffs.groups(request.query_params)
        if bool(a) != bool(b):
            raise params.bad("give both groups: a=<domain> and b=<domain> (each repeatable)")
        diff = await computed(diffs.diff, a, b, pool=served.diff_pool) if a else None
        return await run_in_threadpool(
            page,
            "domains.html.j2",
            f"Domains · {run.name}",
            served,
            run,
            "domains",
            a=a,
            b=b,
            domains=run.store_domains,
            diff=diff,
            matrix=diffs.matrix_if_ready(),
        )

    routes = [
        Route("/", index),
        Route("/r/{run}", run_home),
        Route("/r/{run}/features", features),
        Route("/r/{run}/features/{fid}", feature),
        Route("/r/{run}/search", search_page),
        Route("/r/{run}/search/nearest", search_nearest),
        Route("/r/{run}/domains", domains),
    ]
    return Starlette(
        routes=routes,
        middleware=[Middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts(served))],
        exception_handlers={
            HTTPException: http_error,
            RunUnservable: run_unservable,
            UserError: user_error,
            Exception: server_error,
        },
    )


def allowed_hosts(served: Served) -> list[str]:
    """On loopback, only requests addressed to this machine's own names, and to --host as given (the
    URL printed names it): a web page elsewhere cannot read the runs through a DNS name rebound to
    127.0.0.1. Bound wider, any host."""
    host = served.settings.host
    if is_loopback(host):
        return ["127.0.0.1", "localhost", "[::1]", "::1", host, f"[{host}]"]
    return ["*"]


def is_loopback(host: str) -> bool:
    """Every address `host` resolves to is this machine's own (127.0.0.0/8, ::1), however it is
    spelled: the guard above was keyed on three spellings, so --host 127.1 or 127.0.0.2 answered
    a request for any Host."""
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return False
    addresses = [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]
    own = [getattr(a, "ipv4_mapped", None) or a for a in addresses]  # ::ffff:127.0.0.1 is 127.0.0.1
    return bool(own) and all(a.is_loopback for a in own)


def one_line(text: str) -> str:
    return " ".join(str(text).split())


async def http_error(request: Request, exc: HTTPException) -> PlainTextResponse:
    # its headers kept: a 405 names the methods allowed (Allow), as HTTP asks
    return PlainTextResponse(
        f"error {exc.status_code}: {one_line(exc.detail)}\n", status_code=exc.status_code, headers=exc.headers
    )


async def user_error(request: Request, exc: UserError) -> PlainTextResponse:
    return PlainTextResponse(f"error 400: {one_line(exc)}\n", status_code=400)


async def run_unservable(request: Request, exc: RunUnservable) -> PlainTextResponse:
    return PlainTextResponse(f"error {exc.status}: {one_line(exc)}\n", status_code=exc.status)


async def server_error(request: Request, exc: Exception) -> PlainTextResponse:
    log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    return PlainTextResponse(
        f"error 500: {type(exc).__name__}: {one_line(exc)[:200]}; see the server's log\n", status_code=500
    )
