"""The screenshots of docs/application/serve.md: each sae-serve page of a run, in headless
Chromium, by the browser code the tests drive it with (tests/browser.py).

    PYTHONPATH=. .venv/bin/python docs/application/serve_screenshots.py [RUN]   # default: the newest run

Writes docs/assets/screenshots/serve-{features,feature,search,domains,matrix}.png.
"""

from __future__ import annotations

import sys
import time
import urllib.parse
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from sae_lightning.api import find_runs, run_roots  # noqa: E402
from sae_lightning.serve import load_served, running  # noqa: E402
from tests.browser import Chromium  # noqa: E402

OUT = ROOT / "docs" / "assets" / "screenshots"
QUERY = "The Roman empire fell when invading armies conquered its capital."


def main() -> None:
    runs = [Path(sys.argv[1])] if len(sys.argv) > 1 else [r for root in run_roots() for r in find_runs(root)]
    if not runs:
        sys.exit("no finished run under outputs/: give a run folder")
    run = max(runs, key=lambda p: (p / "metrics.json").stat().st_mtime)
    served = load_served([run])
    name = next(iter(served.runs))
    cat = served.runs[name].labelled().catalog
    best = int(
        cat.data.feature_id[
            int(max(range(cat.n), key=lambda r: (cat.verdict[r] == "interpretable", -abs(cat.score[r] - 0.8))))
        ]
    )
    with running(served) as url, Chromium(1280, 900) as tab:
        base = f"{url}/r/{name}"
        tab.open(base + "/features?verdict=interpretable")
        tab.screenshot(OUT / "serve-features.png")
        tab.open(f"{base}/features/{best}")
        tab.screenshot(OUT / "serve-feature.png")
        tab.open(base + "/search?q=" + urllib.parse.quote(QUERY))
        tab.eval("""(() => { const s = document.querySelector('#features input.slider');
                     s.value = s.max; s.dispatchEvent(new Event('input'));
                     s.dispatchEvent(new Event('change')); })()""")
        tab.wait_for("document.getElementById('results').dataset.state")
        tab.screenshot(OUT / "serve-search.png")
        tab.open(base + "/domains?a=Mathematics&b=History")
        for _ in range(600):  # the domain matrix is computed in the background at start
            if not tab.eval("!!document.getElementById('matrix-computing')"):
                break
            time.sleep(1)
            tab.open(base + "/domains?a=Mathematics&b=History")
        tab.screenshot(OUT / "serve-domains.png", height=1300)
        matrix = tab.eval("document.getElementById('matrix').getBoundingClientRect().top + window.scrollY")
        tab.screenshot(OUT / "serve-matrix.png", top=matrix, height=1400)
        assert tab.errors == [], tab.errors
    print("\n".join(str(p) for p in sorted(OUT.glob("serve-*.png"))))


if __name__ == "__main__":
    main()
