"""Tests of sae_lightning.report on synthetic run dirs (real files, no training): fast, no network."""
from __future__ import annotations

import json
import re
import time
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import save_file

from sae_lightning.report import write_report

DOMAINS = ["Arts", "History", "Mathematics", "Philosophy and religion", "Technology"]
EVIL = '<script>alert("x")</script> & \'quotes\' "double" <b>bold</b>'
SECTIONS = ["overview", "metrics", "density", "label-quality", "feature-map", "families", "features"]
METRICS = {
    "fve": 0.8123, "nmse": 0.1034, "cos_sim": 0.9312, "l0": 32.0, "dead_frac": 0.125, "dense_frac": 0.025,
    "retrieval_recall@10": 0.6071,
    "label_auroc_mean": 0.9012, "label_auroc_median": 0.9134,
    "random_label_auroc_mean": 0.5021, "random_label_auroc_median": 0.4987,
    "tfidf_auroc_mean": 0.8512, "tfidf_auroc_median": 0.8634,
    "keyword_hit_lift_mean": 4.321, "keyword_hit_lift_median": 3.21,
    "random_keyword_hit_lift_mean": 1.042, "random_keyword_hit_lift_median": 0.987,
    # tfidf_keyword_hit_lift_* deliberately absent: that cell must say "not measured"
    "n_features": 40, "n_labelled": 34, "n_dead": 5,
}


def make_run(root: Path, n: int = 40, d_in: int = 16, n_dead: int = 5, n_texts: int = 3,
             text_len: int | None = None, families: bool = True, seed: int = 0) -> Path:
    """A finished run dir as the pipeline writes it (docs/run-folder.md)."""
    rng = np.random.default_rng(seed)
    run = root / "run"
    (run / "sae").mkdir(parents=True)
    (run / ".hydra").mkdir()
    (run / "metrics.json").write_text(json.dumps(METRICS))
    (run / ".hydra" / "config.yaml").write_text("sae:\n  k: 4\ndomain:\n  name: wiki_vital  # <not html>\n")
    (run / "sae" / "cfg.json").write_text(json.dumps({
        "architecture": "topk", "d_in": d_in, "d_sae": n, "k": 4, "dtype": "float32",
        "metadata": {"model_name": "all-MiniLM-L6-v2"}}))
    W = torch.randn(n, d_in)
    W = W / W.norm(dim=1, keepdim=True)
    save_file({"W_enc": W.T.contiguous(), "b_enc": torch.zeros(n), "W_dec": W, "b_dec": torch.zeros(d_in)},
              str(run / "sae" / "sae_weights.safetensors"))
    dead = np.zeros(n, dtype=bool)
    dead[n - n_dead:] = True
    density = np.where(dead, 0.0, 10 ** rng.uniform(-4, -0.5, n))
    save_file({"sparsity": torch.tensor(np.log10(np.maximum(density, 1e-10)), dtype=torch.float32)},
              str(run / "sae" / "sparsity.safetensors"))
    filler = "lorem ipsum dolor sit amet " * 20
    rows = []
    for i in range(n):
        live = not dead[i]
        labelled = live and i != 1  # feature 1: live but no label
        main = DOMAINS[i % len(DOMAINS)]
        shares = {main: 0.7, DOMAINS[(i + 1) % len(DOMAINS)]: 0.3} if live else {}
        k = n_texts if live else 0
        texts = [(f"text {i}.{j} " + (EVIL if i == 0 and j == 0 else "")
                  + (filler[:text_len] if text_len else "")) for j in range(k)]
        scored = labelled and i % 7 != 3  # some labelled features are not scored: NaN
        rows.append({
            "feature_id": i, "dead": bool(dead[i]), "density": float(density[i]),
            "log10_density": float(np.log10(density[i])) if density[i] > 0 else float("-inf"),
            "label": (EVIL if i == 0 else f"label {i} {main.lower()}") if labelled else "",
            "label_reason": "" if labelled else ("dead" if dead[i] else "no candidate words"),
            "keywords": [f"kw{i}a", f"kw{i}b", "x<y"] if labelled else [],
            "keyword_scores": [0.61, 0.52, 0.4] if labelled else [],
            "top_ids": [f"wiki:{i}:{j}" for j in range(k)], "top_texts": texts,
            "top_acts": [float(3 - 0.5 * j) for j in range(k)],
            "top_domains": [DOMAINS[(i + j) % len(DOMAINS)] for j in range(k)],
            "domain_shares": json.dumps(shares), "main_domain": main if live else "",
            "domain_specificity": 0.6 if live else float("nan"),
            "label_auroc": float(rng.uniform(0.7, 1)) if scored else float("nan"),
            "keyword_hit_lift": float(rng.uniform(1, 6)) if scored else float("nan"),
            "random_label_auroc": float(rng.uniform(0.3, 0.7)) if scored else float("nan"),
            "random_keyword_hit_lift": float(rng.uniform(0.5, 1.5)) if scored else float("nan"),
            "tfidf_label": f"tfidf {i} & co" if live else "",
            "tfidf_auroc": float(rng.uniform(0.6, 0.95)) if scored else float("nan"),
        })
    pd.DataFrame(rows).to_parquet(run / "features.parquet")
    if families:
        pd.DataFrame({"family_id": [0, 1], "parent": [2, 3], "children": [[4, 5, 6], [7]],
                      "label": ["family <zero>", "family one"]}).to_parquet(run / "families.parquet")
    return run


VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
BLOCK = {"address", "article", "aside", "details", "div", "dl", "fieldset", "figure", "footer", "form", "h1", "h2",
         "h3", "h4", "h5", "h6", "header", "hr", "main", "nav", "ol", "p", "pre", "section", "table", "ul"}


class Checker(HTMLParser):
    """Strict well-formedness: every non-void element closed explicitly and in order, no block
    element inside <p> (HTML5 would silently close the <p>), ids unique."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack, self.errors, self.ids, self.tags = [], [], set(), []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        a = dict(attrs)
        if "id" in a:
            if a["id"] in self.ids:
                self.errors.append(f"duplicate id {a['id']}")
            self.ids.add(a["id"])
        if tag in BLOCK and self.stack and self.stack[-1] == "p":
            self.errors.append(f"<{tag}> inside <p> at {self.getpos()}")
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_endtag(self, tag):
        if tag in VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> at {self.getpos()} closes {self.stack[-1:] or 'nothing'}")
        else:
            self.stack.pop()


def check_html(page: str) -> Checker:
    assert page.lstrip().lower().startswith("<!doctype html>")
    c = Checker()
    c.feed(page)
    c.close()
    assert not c.errors, c.errors[:5]
    assert not c.stack, f"unclosed: {c.stack}"
    return c


class TableText(HTMLParser):
    """Cell texts of the table with a given id, row by row."""

    def __init__(self, table_id):
        super().__init__()
        self.table_id, self.inside, self.rows, self.cell = table_id, False, [], None

    def handle_starttag(self, tag, attrs):
        if tag == "table" and dict(attrs).get("id") == self.table_id:
            self.inside = True
        elif self.inside and tag == "tr":
            self.rows.append([])
        elif self.inside and tag in ("td", "th"):
            self.cell = ""

    def handle_endtag(self, tag):
        if tag == "table":
            self.inside = False
        elif self.inside and tag in ("td", "th"):
            self.rows[-1].append(self.cell.strip())
            self.cell = None

    def handle_data(self, data):
        if self.cell is not None:
            self.cell += data


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    run = make_run(tmp_path_factory.mktemp("small"))
    out = write_report(run)
    return run, out, out.read_text(encoding="utf-8")


def test_sections_present_and_html_well_formed(small):
    run, out, page = small
    assert out == run / "report.html"
    c = check_html(page)
    for sid in SECTIONS:
        assert sid in c.ids, sid
    assert {f"f{i}" for i in range(35)} <= c.ids  # one card per live feature, dead ones have none
    assert "f39" not in c.ids
    assert sum(1 for t, _ in c.tags if t == "script") == 1  # only the page's own filter/sort script
    assert sum(1 for t, _ in c.tags if t == "circle") == 40  # every feature on the map
    assert "all-MiniLM-L6-v2" in page and "topk" in page and "Philosophy and religion" in page


def test_no_network_references(small):
    page = small[2]
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page, re.I)
    assert not re.search(r"@import|url\(\s*['\"]?(https?:)?//", page, re.I)


def test_text_is_escaped(small):
    page = small[2]
    assert "<script>alert" not in page and "<b>bold</b>" not in page
    assert "&lt;script&gt;alert" in page
    assert "x&lt;y" in page  # a keyword
    assert "&lt;not html&gt;" in page  # the Hydra config block
    assert "family &lt;zero&gt;" in page
    assert "no candidate words" in page  # the reason shown for the unlabelled live feature


def test_label_quality_table_uses_metrics(small):
    page = small[2]
    p = TableText("label-quality-table")
    p.feed(page)
    rows = {r[0]: r[1:] for r in p.rows[1:]}
    assert list(rows) == ["KeyBERT label", "random other feature's label", "TF-IDF top terms"]
    assert rows["KeyBERT label"][:4] == ["0.9012", "0.9134", "4.321", "3.21"]
    assert rows["random other feature's label"][:4] == ["0.5021", "0.4987", "1.042", "0.987"]
    assert rows["TF-IDF top terms"][:4] == ["0.8512", "0.8634", "not measured", "not measured"]


def test_summary_md(small):
    run = small[0]
    md = (run / "summary.md").read_text(encoding="utf-8")
    for key in ("fve", "0.8123", "retrieval_recall@10", "0.6071", "0.9012", "0.5021", "not measured"):
        assert key in md, key
    assert "## Top 20 features by label AUROC" in md
    assert "dead: 5 of 40" in md and "no candidate words: 1" in md
    assert "<script>" not in md and "&lt;script&gt;" in md  # no raw HTML from a label
    top = [ln for ln in md.splitlines() if ln.startswith("| #")]
    assert len(top) == 20


@pytest.mark.parametrize("missing", ["metrics.json", "features.parquet"])
def test_unfinished_run_is_a_clear_error(tmp_path, missing):
    run = make_run(tmp_path, n=10, n_dead=1, families=False)
    (run / missing).unlink()
    with pytest.raises(FileNotFoundError) as e:
        write_report(run)
    msg = str(e.value)
    assert missing in msg and "not finished" in msg and "\n" not in msg
    assert not (run / "report.html").exists()


def test_corrupt_metrics_is_a_value_error(tmp_path):
    run = make_run(tmp_path, n=10, n_dead=1, families=False)
    (run / "metrics.json").write_text('{"fve": 0.8')  # cut off mid-write
    with pytest.raises(ValueError, match="metrics.json"):
        write_report(run)


def test_minimal_run_degrades_to_not_available(tmp_path):
    """Only the two required files, with few columns: every section still renders."""
    run = tmp_path / "bare"
    run.mkdir()
    (run / "metrics.json").write_text(json.dumps({"fve": 0.5, "label_auroc_mean": float("nan")}))
    pd.DataFrame({"feature_id": [0, 1, 2], "label": ["a & b", "", "c"],
                  "label_auroc": [0.9, float("nan"), 0.7]}).to_parquet(run / "features.parquet")
    page = write_report(run).read_text(encoding="utf-8")
    c = check_html(page)
    for sid in SECTIONS:
        assert (sid in c.ids) == (sid != "families"), sid  # families only when families.parquet exists
    assert "not available" in page and "a &amp; b" in page
    p = TableText("label-quality-table")
    p.feed(page)
    keybert, random_row = p.rows[1], p.rows[2]
    assert keybert[1] == "n/a"  # metrics.json says NaN: metrics.json wins over the column
    assert keybert[2] == "0.8†"  # median absent from metrics.json: computed from the column, marked
    assert random_row[1:5] == ["not measured"] * 4
    assert "fve" in (run / "summary.md").read_text()


def test_large_sae_page_size_and_speed(tmp_path):
    n = 6144
    run = make_run(tmp_path, n=n, d_in=384, n_dead=144, n_texts=8, text_len=400, families=False)
    t0 = time.perf_counter()
    page_path = write_report(run)
    dt = time.perf_counter() - t0
    size = page_path.stat().st_size
    assert size < 15e6, f"report.html is {size / 1e6:.1f} MB"
    assert dt < n / 1000, f"{dt:.1f} s: budget is 1 s per 1000 features (typical: ~0.3 s)"
    page = page_path.read_text(encoding="utf-8")
    assert page.count('<article class="card"') == n - 144
    assert page.count("<circle") == n
    assert re.search(r"up to \d top texts per card, each cut to \d+ characters", page)
