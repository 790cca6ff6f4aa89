"""Tests of sae_lightning.report on synthetic run dirs (real files, no training) and on the tiny
real run with the labelling stage's new columns added (test data for the renderer). The page at
scale (thousands of features) is tested in test_report_scale.py."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import save_file

from sae_lightning.errors import UserError
from sae_lightning.report import write_report
from sae_lightning.report.quality import SOURCES as QUALITY_ROWS
from sae_lightning.run_dir import RunDir

from .browser import require_browser
from .helpers import write_labelled_run
from .html_checks import check_html, page_data, table_rows

DOMAINS = ["Arts", "History", "Mathematics", "Philosophy and religion", "<script>alert(1)</script>"]
EVIL = '<script>alert("x")</script> & \'quotes\' "double" <b>bold</b>'
SECTIONS = ["overview", "metrics", "density", "label-quality", "feature-map", "families", "features"]
VERDICT_CYCLE = ["interpretable", "interpretable", "mixed", "weak"]
TOKEN_ROW = 4  # an interpretable row of the cycle made a token feature
SOURCES = ["label", "tfidf", "random"]
METRICS = {
    "fve": 0.8123,
    "nmse": 0.1034,
    "cos_sim": 0.9312,
    "l0": 32.0,
    "dead_frac": 0.125,
    "dense_frac": 0.025,
    "retrieval_recall@10": 0.6071,
    "n_features": 40,
    "n_labelled": 34,
    "n_dead": 5,
    "label_auroc_mean": 0.9012,
    "label_auroc_hard_mean": 0.7345,
    "label_precision_mean": 0.4567,
    "label_recall_mean": 0.3456,
    "tfidf_auroc_mean": 0.8512,
    "tfidf_auroc_hard_mean": 0.6789,
    "tfidf_precision_mean": 0.3012,
    "tfidf_recall_mean": 0.2345,
    "random_auroc_mean": 0.5021,
    "random_auroc_hard_mean": 0.4987,
    "random_precision_mean": 0.0312,
    # random_recall_mean deliberately absent and its column too: that cell must say "not measured"
    "judge_label_auroc_mean": 0.8111,
    "judge_label_auroc_hard_mean": 0.6222,
    "judge_tfidf_auroc_mean": 0.7333,
    "judge_tfidf_auroc_hard_mean": 0.5444,
    "judge_random_auroc_mean": 0.5055,
    "judge_random_auroc_hard_mean": 0.4966,
    "judge_model": "sentence-transformers/all-mpnet-base-v2",
    "n_interpretable": 17,
    "n_mixed": 9,
    "n_weak": 9,
    "coherence_mean": 0.21,
}


def new_score_columns(df: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """The columns the labelling rework adds (coherence, verdict, the new scores), filled with
    plausible values: test data for the renderer, not a labelling result."""
    rng = np.random.default_rng(seed)
    n, dead = len(df), df["dead"].to_numpy()
    df = df.copy()
    df["verdict"] = np.where(dead, "dead", [VERDICT_CYCLE[i % 4] for i in range(n)])
    if n > TOKEN_ROW and not dead[TOKEN_ROW]:  # one token feature, scored above everything
        df.loc[TOKEN_ROW, ["verdict", "label"]] = ["token", 'token: "cr…"']
    mixed = df["verdict"].isin(["mixed", "token"]).to_numpy()
    df["coherence"] = np.where(dead, np.nan, np.where(mixed, rng.uniform(0, 0.1, n), rng.uniform(0.2, 0.6, n)))
    for src in SOURCES:
        for score, lo in (("auroc", 0.5), ("auroc_hard", 0.4), ("precision", 0.0), ("recall", 0.0)):
            if (src, score) != ("random", "recall"):
                df[f"{src}_{score}"] = np.where(dead, np.nan, rng.uniform(lo, 1.0, n))
        for score in ("auroc", "auroc_hard"):
            df[f"judge_{src}_{score}"] = np.where(dead, np.nan, rng.uniform(0.4, 1.0, n))
    df["label_score"] = np.where(dead, np.nan, np.where(mixed, 0.99, rng.uniform(0.3, 0.9, n)))
    return df.drop(
        columns=[
            c
            for c in ("keyword_hit_lift", "random_label_auroc", "random_keyword_hit_lift", "tfidf_keyword_hit_lift")
            if c in df
        ]
    )


def make_run(
    root: Path,
    n: int = 40,
    d_in: int = 16,
    n_dead: int = 5,
    n_texts: int = 3,
    text_len: int | None = None,
    families: bool = True,
    seed: int = 0,
) -> Path:
    """A finished run dir as the pipeline writes it (docs/run-folder.md)."""
    rng = np.random.default_rng(seed)
    run = root / "run"
    (run / "sae").mkdir(parents=True)
    (run / ".hydra").mkdir()
    (run / ".hydra" / "config.yaml").write_text("sae:\n  k: 4\ndomain:\n  name: wiki_vital  # <not html>\n")
    (run / "sae" / "cfg.json").write_text(
        json.dumps(
            {
                "architecture": "topk",
                "d_in": d_in,
                "d_sae": n,
                "k": 4,
                "dtype": "float32",
                "metadata": {"model_name": "all-MiniLM-L6-v2"},
            }
        )
    )
    W = torch.randn(n, d_in)
    W = W / W.norm(dim=1, keepdim=True)
    save_file(
        {"W_enc": W.T.contiguous(), "b_enc": torch.zeros(n), "W_dec": W, "b_dec": torch.zeros(d_in)},
        str(run / "sae" / "sae_weights.safetensors"),
    )
    dead = np.zeros(n, dtype=bool)
    dead[n - n_dead :] = True
    density = np.where(dead, 0.0, 10 ** rng.uniform(-4, -0.5, n))
    filler = "lorem ipsum dolor sit amet " * 20
    rows = []
    for i in range(n):
        live = not dead[i]
        labelled = live and i != 1  # feature 1: live but no label
        main = DOMAINS[i % len(DOMAINS)]
        k = n_texts if live else 0
        rows.append(
            {
                "feature_id": i,
                "dead": bool(dead[i]),
                "density": float(density[i]),
                "log10_density": float(np.log10(density[i])) if density[i] > 0 else float("-inf"),
                "label": (EVIL if i == 0 else f"label {i} {main.lower()}") if labelled else "",
                "label_reason": "" if labelled else ("dead" if dead[i] else "no candidate words"),
                "keywords": [f"kw{i}a", f"kw{i}b", "x<y"] if labelled else [],
                "keyword_scores": [0.61, 0.52, 0.4] if labelled else [],
                "top_ids": [f"wiki:{i}:{j}" for j in range(k)],
                "top_texts": [
                    f"text {i}.{j} " + (EVIL if i == 0 and j == 0 else "") + (filler[:text_len] if text_len else "")
                    for j in range(k)
                ],
                "top_acts": [float(3 - 0.5 * j) for j in range(k)],
                "top_domains": [DOMAINS[(i + j) % len(DOMAINS)] for j in range(k)],
                "domain_shares": json.dumps({main: 0.7, DOMAINS[(i + 1) % len(DOMAINS)]: 0.3} if live else {}),
                "main_domain": main if live else "",
                "domain_specificity": 0.6 if live else float("nan"),
                "label_auroc": float(rng.uniform(0.7, 1)) if labelled else float("nan"),
                "keyword_hit_lift": float(rng.uniform(1, 6)) if labelled else float("nan"),
                "random_label_auroc": float(rng.uniform(0.3, 0.7)) if labelled else float("nan"),
                "tfidf_label": f"tfidf {i} & co" if live else "",
                "tfidf_auroc": float(rng.uniform(0.6, 0.95)) if labelled else float("nan"),
            }
        )
    df = pd.DataFrame(rows)
    fams = (
        pd.DataFrame(
            {
                "family_id": [0, 1],
                "parent": [2, 3],
                "children": [[4, 5, 6], [7]],
                "label": ["family <zero>", "family one"],
            }
        )
        if families
        else None
    )
    write_labelled_run(run, new_score_columns(df, seed), fams, METRICS)
    return run


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
    assert [t for t, _ in c.tags if t == "script"] == ["script", "script"]  # the data and the page's script
    assert "canvas" in [t for t, _ in c.tags] and "<article" not in page  # cards are drawn on demand
    data = page_data(page)
    assert data["id"] == list(range(40)) and len(data["xy"]) == 40
    assert data["verdicts"][data["verdict"][2]] == "mixed" and data["verdicts"][data["verdict"][39]] == "dead"
    assert data["label"][0] == EVIL and data["texts"][0][0].startswith("text 0.0 <script>")
    assert "all-MiniLM-L6-v2" in page and "topk" in page and "Philosophy and religion" in page


def test_summary_opens_on_verdict_counts_and_quality(small):
    page = small[2]
    summary = page[page.index('id="overview"') : page.index('id="metrics"')]
    counts = re.findall(r'<div class="tile vt v\d"><div class="tv">([\d,]+)</div><div class="tt">(\w+)</div>', summary)
    assert {v: int(k) for k, v in counts} == {"interpretable": 17, "mixed": 9, "token": 1, "weak": 8, "dead": 5}
    assert "scored by the independent judge sentence-transformers/all-mpnet-base-v2" in summary
    assert "<code>label_quality</code> (mean AUROC of the labels against hard negatives" in summary
    assert re.search(
        r"KeyBERT label <b>0.622</b> · TF-IDF top terms <b>0.544</b> · random other feature's "
        r"label <b>0.497</b>",
        html.unescape(summary),
    )  # the template escapes the apostrophe


def test_no_network_references(small):
    page = small[2]
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page, re.I)
    assert not re.search(r"@import|url\(\s*['\"]?(https?:)?//", page, re.I)


def test_text_and_domain_names_are_escaped(small):
    run, _, page = small
    assert "<script>alert" not in page and "<b>bold</b>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page  # the evil domain, in the legend and domain list
    assert "&lt;not html&gt;" in page and "family &lt;zero&gt;" in page
    md = (run / "summary.md").read_text(encoding="utf-8")
    assert "<script>" not in md and "&lt;script&gt;alert(1)&lt;/script&gt;" in md


def test_label_quality_tables_use_metrics(small):
    page = small[2]
    rows = table_rows(page, "label-quality-table")
    # a row per label set; the seed and BERTopic baselines, absent from this table, are not measured
    assert list(rows) == [name for _, name in QUALITY_ROWS]
    assert rows["BERTopic KeyBERTInspired"][:4] == ["not measured"] * 4
    assert rows["KeyBERT label"][:4] == ["0.901", "0.735", "0.457", "0.346"]
    assert rows["random other feature's label"][:4] == ["0.502", "0.499", "0.0312", "not measured"]
    judge = table_rows(page, "label-quality-judge")
    assert judge["KeyBERT label"][:2] == ["0.811", "0.622"] and judge["TF-IDF top terms"][:2] == ["0.733", "0.544"]


def test_summary_md(small):
    run = small[0]
    md = (run / "summary.md").read_text(encoding="utf-8")
    assert "| interpretable | 17 |" in md and "| mixed | 9 |" in md and "| token | 1 |" in md and "| dead | 5 |" in md
    assert "**`label_quality`** (mean AUROC of the labels against hard negatives" in md and "**0.622**" in md
    for key in ("fve", "0.8123", "0.7345", "judge", "not measured"):
        assert key in md, key
    top = [ln for ln in md.splitlines() if ln.startswith("| #")]
    assert len(top) == 17  # interpretable features only: a mixed or token one (label_score 0.99) never makes it
    assert not [ln for ln in top if "token" in ln]
    assert "live but unlabelled: 1 (no candidate words: 1)" in md


@pytest.mark.parametrize("verdicts", [None, "unrated"])
def test_a_table_without_verdicts_is_refused_in_one_line(tmp_path, verdicts):
    """features.parquet holds one of the labelling's verdicts per feature; a table without them
    (another labeller's, or damaged) is one line that says to relabel, and no page is written."""
    run = make_run(tmp_path, n=10, n_dead=1, families=False)
    path = RunDir(run).labeling().features
    df = pd.read_parquet(path)
    df = df.drop(columns="verdict") if verdicts is None else df.assign(verdict=verdicts)
    df.to_parquet(path)
    with pytest.raises(
        UserError, match=rf"has no verdicts this version knows .*; label the run again \(sae-label run_dir={run}\)$"
    ):
        write_report(run)
    assert not RunDir(run).labeling().report.exists()


@pytest.mark.parametrize("missing", ["metrics.json", "features.parquet"])
def test_unfinished_run_is_a_clear_error(tmp_path, missing):
    run = make_run(tmp_path, n=10, n_dead=1, families=False)
    (run / missing).resolve().unlink()  # the file itself, not the top-level link to it
    with pytest.raises(UserError) as e:
        write_report(run)
    msg = str(e.value)
    assert missing in msg and "not finished" in msg and "\n" not in msg
    assert not (run / "report.html").exists()


def test_corrupt_metrics_is_a_user_error(tmp_path):
    run = make_run(tmp_path, n=10, n_dead=1, families=False)
    (run / "metrics.json").write_text('{"fve": 0.8')  # cut off mid-write
    with pytest.raises(UserError, match="metrics.json"):
        write_report(run)


def test_minimal_run_degrades_to_not_available(tmp_path):
    """Only the two required files, with few columns (a verdict per feature, which the report
    needs): every section still renders."""
    run = tmp_path / "bare"
    run.mkdir()
    write_labelled_run(
        run,
        pd.DataFrame(
            {
                "feature_id": [0, 1, 2],
                "label": ["a & b", "", "c"],
                "label_auroc": [0.9, float("nan"), 0.7],
                "verdict": ["interpretable", "weak", "interpretable"],
            }
        ),
        results={"fve": 0.5},
    )
    page = write_report(run).read_text(encoding="utf-8")
    c = check_html(page)
    for sid in SECTIONS:
        assert (sid in c.ids) == (sid != "families"), sid  # families only when families.parquet exists
    assert "not available" in page and page_data(page)["label"] == ["a & b", "", "c"]
    rows = table_rows(page, "label-quality-table")
    assert rows["KeyBERT label"][0] == "0.8†"  # no summary figure: the column's mean, marked
    assert rows["TF-IDF top terms"][:4] == ["not measured"] * 4
    assert "fve" in (run / "summary.md").read_text()


def test_real_tiny_run_with_new_columns(tiny_labelled_run, tmp_path):
    """The tiny trained run's files, its features table extended with the new columns."""
    import shutil

    run = tmp_path / "run"
    shutil.copytree(tiny_labelled_run, run, ignore=shutil.ignore_patterns("checkpoints", "wandb", "csv"))
    current = RunDir(run).labeling()  # the report reads the current labelling, not the top-level mirror
    new_score_columns(current.read_features()).to_parquet(current.features)
    page = write_report(run).read_text(encoding="utf-8")
    assert (run / "report.html").read_bytes() == current.report.read_bytes()
    check_html(page)
    data = page_data(page)
    assert len(data["id"]) == 128 and len(data["xy"]) == 128 and data["coherence"] is not None
    assert "Mathematics" in data["domains"] and "label_auroc_hard" in data["scores"]
    # every score table shows the two method baselines beside TF-IDF and random
    rows = table_rows(page, "label-quality-table")
    md = (run / "summary.md").read_text(encoding="utf-8")
    for name in ("seed method (KeyBERT per top text, merged)", "BERTopic KeyBERTInspired"):
        assert name in rows and rows[name][0] != "not measured" and name in md
    assert "seed_auroc_hard" in data["scores"] and "bertopic_auroc_hard" in data["scores"]
    # the metrics come last, and list neither a judge's scores on a run without one nor the means
    # the label-quality table already shows
    metrics = md[md.index("## Metrics") :]
    assert md.index("## Top") < md.index("## Metrics") and "| fve |" in metrics and "| label_auroc_median |" in metrics
    assert "| judge_label" not in metrics and "n/a" not in metrics and "| label_auroc_mean |" not in metrics


def rendered_dom(page: Path, tmp_path: Path, fragment: str = "") -> str:
    """The page's DOM after headless Chromium ran its script; any console error fails the test."""
    import subprocess

    browser = require_browser()
    res = subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--virtual-time-budget=3000",
            "--dump-dom",
            "--enable-logging=stderr",
            "--v=0",
            page.as_uri() + fragment,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    # The page's console, as Chromium logs it: any error of the script (or a blocked fetch) fails.
    console = [ln for ln in res.stderr.splitlines() if ":CONSOLE" in ln]
    assert not [ln for ln in console if re.search(r"Uncaught|Error|Refused|Failed", ln)], console
    return res.stdout


def test_script_draws_cards_and_marks_mixed_features(small, tmp_path):
    dom = rendered_dom(small[1], tmp_path)
    cards = re.findall(r'<article class="card (\w+)" id="f(\d+)"', dom)
    assert len(cards) == 35 and {v for v, _ in cards} == {"interpretable", "mixed", "token", "weak"}  # live ones only
    # confidence order: interpretable first, then mixed, the token feature (though scored highest), weak
    assert [v for v, _ in cards] == ["interpretable"] * 17 + ["mixed"] * 9 + ["token"] + ["weak"] * 8
    token = rendered_dom(small[1], tmp_path, f"#f{TOKEN_ROW}")
    assert "Token feature" in re.search(
        rf'<article class="card token" id="f{TOKEN_ROW}">.*?</article>', token, re.S
    ).group(0)
    mixed = rendered_dom(small[1], tmp_path, "#f2")  # opening a feature's link shows its card alone
    card = re.search(r'<article class="card mixed" id="f2">.*?</article>', mixed, re.S).group(0)
    assert "Mixed feature" in card and "not a confidence" in card and "· confidence" not in card
    assert "<script>alert" not in dom  # run strings reach the page as text, never as markup
