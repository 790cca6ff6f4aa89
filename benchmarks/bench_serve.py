"""sae-serve under load on loopback: concurrent clients mixing searches and page loads.

    python benchmarks/bench_serve.py [RUN] [--clients 50] [--seconds 60]

Starts `python -m sae_lightning.serve RUN --port 0` (the default run: the newest under outputs/,
as sae_lightning.latest_run finds it), waits for it to load, then runs `--clients` threads for
`--seconds`, each looping over a mix of requests: searches (a new sentence each time),
slider moves (a clamp on a sentence asked before), the Features page with filters, Feature pages
and domain diffs. Bounded in count and time (every
request has a 60 s timeout; the run stops after --seconds plus the requests in flight). Reports
p50/p95 latency per kind, errors (any non-200 answer or failed request), and the server's
resident memory after loading, after a warm-up pass, and after the load. Before the load it waits
for the domain matrix the server computes at start, and times 20 searches of one client alone.
"""

from __future__ import annotations

import argparse
import html
import random
import re
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import defaultdict

import common  # noqa: F401  (sets sys.path and env first)
import psutil
from common import load, machine, md_table, run_and_emit

QUERIES = [
    "The Roman empire fell to invading armies.",
    "A prime number is divisible only by one and itself.",
    "Photosynthesis turns light into chemical energy.",
    "The symphony was first performed in Vienna.",
    "Plate tectonics explains earthquakes and volcanoes.",
    "The treaty ended the war between the kingdoms.",
    "Neurons transmit signals across synapses.",
    "The painter worked in oils on large canvases.",
]
WORDS = ["river", "theorem", "dynasty", "protein", "novel", "election", "galaxy", "market", "temple", "engine"]


def start_server(run: str) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "sae_lightning.serve", run, "--port", "0"],
        cwd=common.ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    line = proc.stdout.readline()  # printed once every run is loaded
    m = re.search(r"at (http://\S+?)/ ", line)
    if not m:
        proc.kill()
        raise RuntimeError(f"sae-serve did not start: {line!r}")
    return proc, m.group(1)


def get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=60) as r:
        return {"status": r.status, "body": r.read().decode()}


def requests_for(base: str, rng: random.Random, d_sae: int, domains: list[str]) -> tuple[str, str]:
    """One request of the mix. A search is a sentence no client asked before (a fresh embedding: no
    cache helps it); a steer is what a slider sends, a clamp on one of the base sentences."""
    kind = rng.choice(["search", "steer", "features", "feature", "diff"])
    if kind == "search":
        q = f"{rng.choice(QUERIES)} {rng.choice(WORDS)} {rng.choice(WORDS)} {rng.randrange(10**6)}"
        return kind, f"{base}/search?q={urllib.parse.quote(q)}"
    if kind == "steer":
        q = urllib.parse.quote(rng.choice(QUERIES))
        return kind, f"{base}/search/nearest?q={q}&clamp={rng.randrange(d_sae)}%3D{rng.choice(['0', '1x', '2x', '3x'])}"
    if kind == "features":
        params = rng.choice(["", "?verdict=interpretable", "?q=war", "?sort=density&page=3", "?min_score=0.5"])
        return kind, f"{base}/features{params}"
    if kind == "feature":
        return kind, f"{base}/features/{rng.randrange(d_sae)}"
    a, b = rng.sample(domains, 2)
    return kind, f"{base}/domains?a={urllib.parse.quote(a)}&b={urllib.parse.quote(b)}"


def client(base, seed, stop_at, d_sae, domains, times, errors) -> None:
    rng = random.Random(seed)
    while time.monotonic() < stop_at:
        kind, url = requests_for(base, rng, d_sae, domains)
        t = time.perf_counter()
        try:
            status = get(url)["status"]
        except (urllib.error.URLError, OSError) as err:
            status = getattr(err, "code", None) or type(err).__name__
        times[kind].append(time.perf_counter() - t)
        if status != 200:
            errors.append(f"{status} {url}")


def run(args) -> dict:
    from sae_lightning.api import find_runs, run_roots

    runs = [r for root in run_roots() for r in find_runs(root)]
    if not args.run and not runs:
        sys.exit("no finished run under outputs/: run `make run` first, or give a run folder")
    target = args.run or str(max(runs, key=lambda p: (p / "metrics.json").stat().st_mtime))
    t0 = time.perf_counter()
    proc, url = start_server(target)
    load_s = time.perf_counter() - t0
    mem = psutil.Process(proc.pid)
    try:
        rss_loaded = mem.memory_info().rss / 2**20
        name = re.search(r'href="/r/([^/"]+)/features"', get(url + "/")["body"]).group(1)
        base = f"{url}/r/{name}"
        t0 = time.perf_counter()
        body = get(base + "/domains")["body"]
        while "matrix-computing" in body and time.perf_counter() - t0 < 600:  # the start-up's domain matrix
            time.sleep(1)
            body = get(base + "/domains")["body"]
        matrix_s = time.perf_counter() - t0
        domains = [html.unescape(d) for d in re.findall(r"<option>([^<]+)</option>", body.split('name="b"')[0])]
        d_sae = int(re.search(r"features 0\.\.(\d+)", urllib_error_body(base + "/features/999999999")).group(1)) + 1
        rng = random.Random(0)
        for _ in range(20):  # warm-up: every kind once or more, so caches and lazy imports are in
            get(requests_for(base, rng, d_sae, domains)[1])
        alone = []  # one client on its own: the latency of a search when nothing else waits
        for i in range(20):
            t = time.perf_counter()
            get(f"{base}/search?q={urllib.parse.quote(f'{QUERIES[i % len(QUERIES)]} alone {i}')}")
            alone.append(1000 * (time.perf_counter() - t))
        rss_warm = mem.memory_info().rss / 2**20
        times, errors = defaultdict(list), []
        stop_at = time.monotonic() + args.seconds
        threads = [
            threading.Thread(target=client, args=(base, i, stop_at, d_sae, domains, times, errors))
            for i in range(args.clients)
        ]
        load_before = load()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        rss_after = mem.memory_info().rss / 2**20
    finally:
        proc.terminate()
        proc.wait(30)
    rows = []
    for kind in sorted(times):
        ms = sorted(1000 * x for x in times[kind])
        rows.append(
            {
                "request": kind,
                "count": len(ms),
                "p50 ms": statistics.median(ms),
                "p95 ms": ms[min(len(ms) - 1, int(0.95 * len(ms)))],
                "max ms": ms[-1],
            }
        )
    every = sorted(1000 * x for k in times for x in times[k])
    rows.append(
        {
            "request": "all",
            "count": len(every),
            "p50 ms": statistics.median(every),
            "p95 ms": every[min(len(every) - 1, int(0.95 * len(every)))],
            "max ms": every[-1],
        }
    )
    return {
        "machine": machine(),
        "run": target,
        "clients": args.clients,
        "seconds": args.seconds,
        "load_s": load_s,
        "matrix_s": matrix_s,
        "alone_p50_ms": statistics.median(alone),
        "alone_max_ms": max(alone),
        "rss_loaded_mib": rss_loaded,
        "rss_warm_mib": rss_warm,
        "rss_after_mib": rss_after,
        "errors": errors,
        "load_avg_before": load_before,
        "load_avg_after": load(),
        "rows": rows,
    }


def urllib_error_body(url: str) -> str:
    try:
        return get(url)["body"]
    except urllib.error.HTTPError as err:
        return err.read().decode()


def markdown(r: dict) -> str:
    m = r["machine"]
    return "\n".join(
        [
            f"sae-serve load test: {r['clients']} clients for {r['seconds']} s on loopback, run {r['run']}",
            f"machine: {m.get('cpu')}, {m.get('cores')} cores (load average {r['load_avg_before']} before, "
            f"{r['load_avg_after']} after: shared with other work)",
            f"server start (runs loaded, activations computed): {r['load_s']:.1f} s; the domain matrix after it "
            f"(in the background): {r['matrix_s']:.1f} s",
            f"one client alone, 20 new sentences: search p50 {r['alone_p50_ms']:.0f} ms, "
            f"max {r['alone_max_ms']:.0f} ms",
            "",
            md_table(r["rows"]),
            "",
            f"errors: {len(r['errors'])}" + (f" (first: {r['errors'][0]})" if r["errors"] else ""),
            f"server memory (RSS): {r['rss_loaded_mib']:.0f} MiB loaded, {r['rss_warm_mib']:.0f} MiB after a warm-up, "
            f"{r['rss_after_mib']:.0f} MiB after the load",
        ]
    )


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", nargs="?", help="a finished, labelled run (default: the newest under outputs/)")
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=60.0)
    run_and_emit(ap, run, markdown)
