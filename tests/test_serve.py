"""sae-serve over two tiny real runs (one with hostile text in its labels and store, one a twin for
the multi-run matching): every page over HTTP, one-line 4xx errors, escaping, concurrency, a
relabel picked up while serving, and the command's refusals. tests/test_serve_browser.py drives
the same pages in a real Chromium."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

from sae_lightning.serve import load_served, running
from sae_lightning.serve.app import Served
from sae_lightning.serve.cli import main as serve_main
from sae_lightning.serve.settings import serve_settings

from .cli_runner import run_command
from .serve_runs import HOSTILE_FEATURE, relabel, two_runs

QUERY = "A prime number is divisible only by one and itself, a theorem of number theory."


@pytest.fixture(scope="module")
def runs(tiny_labelled_run, tmp_path_factory):
    return two_runs(tiny_labelled_run, tmp_path_factory.mktemp("serve"))


@pytest.fixture(scope="module")
def served(runs):
    return load_served(list(runs))


@pytest.fixture(scope="module")
def url(served):
    with running(served, port=0) as base:
        yield base


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=60) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


PAGES = [
    "/",
    "/r/hostile/features",
    "/r/hostile/features?verdict=mixed&sort=density&page=2&q=a",
    f"/r/hostile/features/{HOSTILE_FEATURE}",
    "/r/hostile/search?q=" + urllib.parse.quote(QUERY),
    "/r/hostile/search?q=" + urllib.parse.quote(QUERY) + "&clamp=3%3D2x&clamp=7%3D0",
    "/r/hostile/search/nearest?q=prime&clamp=3%3D0.5",
    "/r/hostile/domains",
    "/r/hostile/domains?a=Mathematics&b=History&b=Arts",
    "/r/hostile/domains?a=&b=",  # empty groups: none chosen yet
    "/r/hostile/features?q=%23%C2%B2",  # '#²': a text, not feature ² (isdigit took it, int() raised: a 500)
    "/r/twin/features/5",
]


@pytest.mark.parametrize("path", PAGES)
def test_every_page_answers(url, path):
    status, body = get(url + path)
    assert status == 200, body
    assert "Traceback" not in body


BAD = {
    "/r/nope/features": (404, "run 'nope' is not served here"),
    "/r/hostile/features/128": (404, "feature 128 does not exist"),
    "/r/hostile/features/-1": (404, "feature -1 does not exist"),
    "/r/hostile/features/abc": (400, "not a feature id"),
    "/r/hostile/features/5_0": (400, "feature '5_0': not a feature id"),  # int() reads 50
    "/r/hostile/features/%E0%A5%AB": (400, "not a feature id"),  # Devanagari 5, which int() reads
    "/r/hostile/features/+5": (400, "not a feature id"),
    "/r/hostile/features?page=1_0": (400, "page='1_0': not a whole number"),
    "/r/hostile/features?min_score=2": (400, "min_score"),
    "/r/hostile/features?verdict=nonsense": (400, "verdict='nonsense': not one of"),
    "/r/hostile/features?page=0": (400, "page=0: out of range"),
    "/r/hostile/search?q=x&clamp=5%3Dabc": (400, "FEATURE=VALUE"),
    "/r/hostile/search?q=x&clamp=999%3D1": (400, "feature 999 does not exist"),
    "/r/hostile/search?q=x&clamp=3%3D1&clamp=3%3D2": (400, "feature 3 is clamped twice"),
    "/r/hostile/search/nearest": (400, "q: give a sentence"),
    "/r/hostile/domains?a=..%2F..%2Fetc%2Fpasswd&b=Arts": (400, "not one of Arts, History, Mathematics"),
    "/r/hostile/domains?a=domain%3Dfiles+domain.path%3D%2Fetc%2Fpasswd&b=Arts": (400, "not one of"),
    "/r/hostile/domains?a=Mathematics&b=Mathematics": (400, "the groups overlap"),
    "/r/hostile/domains?a=Mathematics": (400, "give both groups"),
    "/r/hostile/domains?a=Mathematics&b=": (400, "give both groups"),  # was sae-diff's 'several comma-separated'
    "/r/hostile/../../etc/passwd": (404, ""),
}


@pytest.mark.parametrize("path", BAD)
def test_bad_input_is_a_one_line_4xx(url, path):
    status, body = get(url + path)
    want_status, want_text = BAD[path]
    assert status == want_status, body
    assert want_text in body and body.count("\n") <= 1 and "Traceback" not in body


def test_run_text_is_escaped(url):
    for path in (
        f"/r/hostile/features/{HOSTILE_FEATURE}",
        "/r/hostile/features?q=" + urllib.parse.quote("window.__xss"),
        "/r/hostile/search?q=" + urllib.parse.quote(QUERY),
        "/r/hostile/domains?a=Mathematics&b=History",
    ):
        _, body = get(url + path)
        assert "__xss" in body, path  # the hostile strings are on the page ...
        assert "<script>window.__xss" not in body and "<img src=x onerror" not in body, path  # ... as text only
        assert "<b onmouseover" not in body
    _, body = get(url + f"/r/hostile/features/{HOSTILE_FEATURE}")
    assert "&lt;script&gt;window.__xss=1;alert(1)&lt;/script&gt;" in body


def test_concurrent_requests_are_all_served(url):
    paths = [PAGES[i % len(PAGES)] for i in range(30)]
    with ThreadPoolExecutor(12) as pool:
        answers = list(pool.map(lambda p: get(url + p), paths))
    assert [s for s, _ in answers] == [200] * len(paths)
    alone = get(url + PAGES[4])[1]
    same = [b for p, (_, b) in zip(paths, answers) if p == PAGES[4]]
    strip = re.compile(r"answered in \d+ ms")  # the page says how long it took
    assert all(strip.sub("", b) == strip.sub("", alone) for b in same)


def test_feature_page_shows_its_parts_and_the_twin_run(url):
    _, body = get(url + "/r/hostile/features/5")
    for part in (
        "Scores beside the baselines",
        "Across the activation range",
        "Activation histogram",
        "Domain shares",
        "Nearest features by decoder cosine",
        "In the other runs",
    ):
        assert part in body
    # the twin has the same decoder: feature 5's assigned partner there is feature 5, at cosine 1
    assert re.search(r'<a href="/r/twin/features/5">#5</a></td><td class="n">1</td>', body)


def test_relabel_while_serving_is_picked_up(url, runs):
    _, before = get(url + "/r/twin/features?q=freshly+relabelled")
    assert "no feature matches" in before
    new_id = relabel(runs[1], 9, "freshly relabelled feature")
    _, after = get(url + "/r/twin/features?q=freshly+relabelled")
    assert '<a href="/r/twin/features/9">#9</a>' in after and new_id in after


def test_command_refuses_bad_runs_in_one_line(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "sae_lightning.serve", str(tmp_path / "missing"), "--port", "0"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith(f"error: {tmp_path / 'missing'} is not a run dir: the folder does not exist")


def get_as(url: str, host: str) -> int:
    """The status of a GET of `url` with its Host header set to `host`."""
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers={"Host": host}), timeout=60) as r:
            return r.status
    except urllib.error.HTTPError as err:
        return err.code


def test_a_rebound_host_name_is_refused(url):
    """Bound to loopback, the server answers only requests addressed to this machine by name, so a
    web page elsewhere cannot read the runs through a DNS name rebound to 127.0.0.1."""
    assert get_as(url + "/r/hostile/features", "attacker.example") == 400
    assert get(url.replace("127.0.0.1", "localhost") + "/r/hostile/features")[0] == 200


def test_any_loopback_spelling_keeps_the_rebinding_guard(served):
    """--host 127.0.0.2 (or 127.1) is loopback too, but the guard knew three spellings: bound there,
    the server answered a request for any Host."""
    other = Served(served.order, serve_settings(host="127.0.0.2"))
    with running(other, host="127.0.0.2", port=0) as base:
        assert get_as(base + "/r/hostile/features", "attacker.example") == 400
        assert get(base + "/r/hostile/features")[0] == 200  # the URL printed: Host 127.0.0.2


def test_a_host_name_too_long_to_resolve_is_one_line(runs):
    """Was a UnicodeError traceback ('label too long') from getaddrinfo's IDNA encoding."""
    res = run_command(serve_main, "sae-serve", runs[0], "--host", "a" * 300, "--port", "0")
    assert res.code == 2 and res.err == f"error: --host {'a' * 300}: cannot be resolved (not a host name); " + (
        "give an address such as 127.0.0.1\n"
    )


def test_a_query_in_progress_never_blocks_page_loads(url, served):
    """Every search and diff worker held: a search and a diff wait for them, a page load does not."""
    gate = threading.Event()
    held = [served.compute.submit(gate.wait, 120) for _ in range(served.settings.workers)]
    held.append(served.diff_pool.submit(gate.wait, 120))
    answers: dict[str, int] = {}
    waiting = [
        threading.Thread(target=lambda k=k, p=p: answers.__setitem__(k, get(url + p)[0]))
        for k, p in (("search", "/r/hostile/search?q=a+new+question"), ("diff", "/r/hostile/domains?a=Arts&b=History"))
    ]
    try:
        for t in waiting:
            t.start()
        for path in ("/r/hostile/features", "/r/hostile/features/7", "/"):
            assert get(url + path)[0] == 200
        assert answers == {}  # both still waiting for a worker
    finally:
        gate.set()
    for t in waiting:
        t.join(120)
    assert answers == {"search": 200, "diff": 200} and all(h.done() for h in held)


def test_a_run_moved_away_while_served_answers_410_and_comes_back(tiny_labelled_run, tmp_path):
    """Its stamp changed, so the server took it for a relabel: every page of it, the index
    included, answered 400 'is not a run dir ... pass run_dir=', each request logging 'was
    relabelled'. Now its pages answer 410 naming the fix, the index still opens, and the run
    serves again once it is back."""
    run = tmp_path / "run"
    shutil.copytree(tiny_labelled_run, run, symlinks=True)
    with running(load_served([run]), port=0) as base:
        run.rename(tmp_path / "moved")
        for path in ("/r/run/features", "/r/run/features/3", "/r/run/search?q=algebra"):
            status, body = get(base + path)
            assert status == 410 and body == (
                f"error 410: run 'run' ({run}) was moved or deleted after sae-serve started; "
                "put it back, or restart sae-serve without it\n"
            ), (path, body)
        status, body = get(base + "/")
        assert status == 200 and "gone (moved or deleted after sae-serve started)" in body
        (tmp_path / "moved").rename(run)
        assert get(base + "/r/run/features/3")[0] == 200
