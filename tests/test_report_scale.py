"""The report at scale, on synthetic run dirs: the feature map keeps planted clusters apart, and the
page stays a few MB at d_sae 6,144 and 16,384 (past what fits, card details go to the most confident
features only, and the browser draws both kinds of card)."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from sae_lightning.report import write_report
from sae_lightning.report.featuremap import spectral_2d

from .html_checks import page_data
from .test_report import make_run, rendered_dom


def test_map_keeps_planted_clusters_apart():
    """Decoder rows around 6 directions: each point's nearest map neighbours are of its own cluster."""
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(6, 64))
    cluster = np.repeat(np.arange(6), 60)
    W = centres[cluster] + 0.5 * rng.normal(size=(360, 64))
    xy = spectral_2d(W)
    assert xy.shape == (360, 2) and xy.min() >= 0 and xy.max() <= 1
    d = ((xy[:, None] - xy[None]) ** 2).sum(-1) + np.eye(360) * 9
    near = np.argsort(d, axis=1)[:, :5]
    assert (cluster[near] == cluster[:, None]).mean() > 0.9


def test_large_sae_page_stays_small(tmp_path):
    n = 6144
    run = make_run(tmp_path, n=n, d_in=384, n_dead=144, n_texts=8, text_len=400, families=False)
    page = write_report(run).read_text(encoding="utf-8")
    assert len(page.encode()) < 6e6, f"report.html is {len(page.encode()) / 1e6:.1f} MB"
    data = page_data(page)
    assert len(data["texts"]) == n and 3 <= data["texts_per_card"] <= 8 and 150 <= data["text_chars"] <= 300


@pytest.mark.slow
def test_page_stays_a_few_mb_at_d_sae_16384(tmp_path):
    """Beyond what fits, card details go to the most confident features; every feature keeps its
    core (map position, verdict, label, density), so the map, filters and sorting see them all."""
    n = 16384
    run = make_run(tmp_path, n=n, d_in=384, n_dead=384, n_texts=8, text_len=400, families=False)
    out = write_report(run)
    page = out.read_text(encoding="utf-8")
    assert len(page.encode()) < 5e6, f"report.html is {len(page.encode()) / 1e6:.1f} MB"
    data = page_data(page)
    assert len(data["id"]) == len(data["xy"]) == len(data["label"]) == n
    detail = data["detail"]
    assert 1000 < len(detail) < n and len(data["texts"]) == len(data["keywords"]) == len(detail)
    assert {data["verdicts"][data["verdict"][r]] for r in detail} == {"interpretable"}  # the most confident
    score = pd.read_parquet(run / "features.parquet", columns=["label_score"])["label_score"].to_numpy()
    interp = [i for i in range(n) if data["verdicts"][data["verdict"][i]] == "interpretable"]
    cut = min(score[detail])
    assert all(score[i] <= cut + 1e-9 for i in interp if i not in set(detail))  # nobody better left out
    without = next(i for i in interp if i not in set(detail))
    dom = rendered_dom(out, tmp_path, f"#f{without}")
    card = re.search(rf'<article class="card interpretable" id="f{without}">.*?</article>', dom, re.S).group(0)
    assert "most confident features only" in card and "<ol" not in card
    dom = rendered_dom(out, tmp_path, f"#f{detail[0]}")
    card = re.search(rf'<article class="card \w+" id="f{detail[0]}">.*?</article>', dom, re.S).group(0)
    assert '<ol class="tx">' in card and "most confident" not in card
