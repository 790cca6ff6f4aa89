"""sae-serve's pages in a real headless Chromium (Debian's chromium-headless-shell, driven over
the DevTools protocol by tests/browser.py): each page loads with no console error, a search
returns features, a slider moves the nearest texts, a diff renders, and the run's hostile texts
stay inert (no script runs, no dialog opens, the markup shows as text).

Screenshots of each page go to $SAE_SERVE_SHOTS when set (the docs' Application pages use them;
docs/application/serve.md says how they were made), else to the test's tmp folder."""

from __future__ import annotations

import os
import time
import urllib.parse
from pathlib import Path

import pytest

from sae_lightning.serve import load_served, running

from .browser import Chromium, require_browser
from .serve_runs import HOSTILE_FEATURE, HOSTILE_LABEL, HOSTILE_TEXT, two_runs

QUERY = "A prime number is divisible only by one and itself, a theorem of number theory."


@pytest.fixture(autouse=True)
def _browser() -> None:
    require_browser()  # a skip saying how to get it; CI (.ci/run) sets SAE_REQUIRE_CHROMIUM: there, a failure


@pytest.fixture(scope="module")
def url(tiny_labelled_run, tmp_path_factory):
    with running(load_served(two_runs(tiny_labelled_run, tmp_path_factory.mktemp("serve_browser"))), port=0) as base:
        yield base + "/r/hostile"


@pytest.fixture(scope="module")
def tab():
    with Chromium() as chromium:
        yield chromium


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    return (
        Path(os.environ["SAE_SERVE_SHOTS"]) if os.environ.get("SAE_SERVE_SHOTS") else tmp_path_factory.mktemp("shots")
    )


def assert_clean(tab: Chromium) -> None:
    """No console error or exception so far, no dialog, and no injected script has run."""
    assert tab.errors == [] and tab.dialogs == []
    assert tab.eval("window.__xss === undefined")


def text_of(tab: Chromium) -> str:
    return tab.eval("document.body.innerText")


def test_features_page_filters_by_text(tab, url, shots):
    tab.open(url + "/features")
    assert_clean(tab)
    assert (
        tab.eval("document.querySelectorAll('#features tbody tr td:first-child a').length") == 50
    )  # a page of 50 of 128
    tab.screenshot(shots / "features.png")
    tab.eval("document.getElementById('q').value = 'window.__xss'")
    tab.submit("form.filters")
    assert "q=window.__xss" in tab.eval("location.search")
    ids = tab.eval("[...document.querySelectorAll('#features tbody tr td:first-child a')].map(a => a.textContent)")
    assert ids == [f"#{HOSTILE_FEATURE}"]
    assert HOSTILE_LABEL in text_of(tab)  # the label's markup shows as text
    assert_clean(tab)


def test_feature_page(tab, url, shots):
    tab.open(url + f"/features/{HOSTILE_FEATURE}")
    assert_clean(tab)
    body = text_of(tab)
    assert HOSTILE_LABEL in body and HOSTILE_TEXT in body
    assert tab.eval("document.querySelectorAll('#distribution svg.plot').length") == 2  # histogram, shares
    assert tab.eval("document.querySelectorAll('#texts ol.tx li').length") > 0
    assert tab.eval("document.querySelectorAll('#other-runs a').length") >= 1  # the twin run's counterpart
    tab.screenshot(shots / "feature.png")


def test_search_returns_features_and_a_slider_moves_the_texts(tab, url, shots):
    tab.open(url + "/search?q=" + urllib.parse.quote(QUERY))
    assert_clean(tab)
    assert tab.eval("document.querySelectorAll('#features input.slider').length") > 0
    base = tab.eval("[...document.querySelectorAll('#nearest-texts > div:first-child li')].map(li => li.innerText)")
    assert len(base) == 10 and tab.eval("!!document.getElementById('unsteered')")
    # the top feature's slider to its far right (3x its top activation): the query moves along its decoder row
    tab.eval("""(() => { const s = document.querySelector('#features input.slider');
                 s.value = s.max; s.dispatchEvent(new Event('input')); s.dispatchEvent(new Event('change')); })()""")
    tab.wait_for("document.getElementById('results').dataset.state")
    steered = tab.eval("[...document.querySelectorAll('#nearest-texts > div:last-child li')].map(li => li.innerText)")
    assert len(steered) == 10 and steered != base
    assert "clamp=" in tab.eval("location.search")  # the steered query has its own URL
    assert_clean(tab)
    tab.screenshot(shots / "search.png")
    linked = tab.eval("location.href")
    tab.open(linked)  # reopening the link shows the same steered texts
    again = tab.eval("[...document.querySelectorAll('#nearest-texts > div:last-child li')].map(li => li.innerText)")
    assert again == steered


def test_domains_diff_renders(tab, url, shots):
    tab.open(url + "/domains")
    for _ in range(100):  # the matrix is computed in the background at start: reload until it is there
        if not tab.eval("!!document.getElementById('matrix-computing')"):
            break
        time.sleep(0.1)
        tab.open(url + "/domains")
    assert_clean(tab)
    assert tab.eval("document.querySelectorAll('#matrix svg.plot').length") == 2
    tab.eval("""(() => { const pick = (name, value) => {
                   for (const o of document.querySelector(`select[name=${name}]`).options)
                   o.selected = o.value === value; };
                 pick('a', 'Mathematics'); pick('b', 'History'); })()""")
    tab.submit("#diff-form")
    assert tab.eval("location.search") == "?a=Mathematics&b=History"
    assert tab.eval("document.querySelectorAll('#forest svg circle').length") > 0
    assert tab.eval("document.querySelectorAll('#diff table.cmp tbody tr').length") > 0
    assert HOSTILE_TEXT in text_of(tab)  # example texts from the store, as text
    assert_clean(tab)
    tab.screenshot(shots / "domains.png")


def test_error_pages_are_one_line(tab, url):
    tab.open(url + "/features/100000")
    assert (
        tab.eval("document.body.innerText").strip()
        == "error 404: feature 100000 does not exist: this run has features 0..127"
    )
    tab.errors.clear()  # the 404 itself is logged by the browser as a failed resource
    tab.open(url + "/features")
    assert tab.errors == []


def test_the_browser_leaves_no_profile_or_process(url):
    """The harness stops Chromium's whole process group before removing its profile: its helper
    processes (the disk cache among them) used to outlive it and leave sae-chromium-* in /tmp."""
    with Chromium() as chromium:
        chromium.open(url + "/features")
        profile, pgid = Path(chromium._profile), chromium.proc.pid
        assert profile.is_dir()
    time.sleep(1.0)  # long enough for a straggler to have written into the profile again
    assert not profile.exists()
    with pytest.raises(ProcessLookupError):
        os.killpg(pgid, 0)
