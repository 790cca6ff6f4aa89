"""summary.md: the few numbers worth pasting into a lab notebook or a PR, in plain Markdown."""
from __future__ import annotations

import html
import re

import numpy as np

from .cards import reason_counts, unlabelled_live
from .fmt import md_cell, num, pct
from .load import RunData
from .quality import COLUMN_TITLES, NOT_MEASURED, label_quality
from .sections import METRIC_INFO, domains_of, model_name

TOP_N = 20


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return (["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
            + ["| " + " | ".join(md_cell(c) for c in r) + " |" for r in rows])


def _md_text(x: object) -> str:
    """Run-supplied text (domain and model names) as inert Markdown: no HTML, links, emphasis or line breaks."""
    return re.sub(r"([\\`*_\[\]|~])", r"\\\1", html.escape(str(x), quote=False)).replace("\r", " ").replace("\n", " ")


def render_summary(run: RunData) -> str:
    cfg, m = run.cfg, run.metrics
    name = run.run_dir.resolve().name
    lines = [f"# SAE run `{name}`", ""]
    facts = [f"{k} {cfg[k]}" for k in ("architecture", "d_in", "d_sae", "k") if cfg.get(k) is not None]
    if model_name(cfg):
        facts.append(f"model {_md_text(model_name(cfg))}")
    doms = domains_of(run)
    if doms:
        facts.append("domains: " + ", ".join(_md_text(d) for d in doms))
    if facts:
        lines += [" · ".join(facts), ""]

    lines += ["## Metrics", ""]
    if m:
        keys = [k for k in METRIC_INFO if k in m] + sorted(k for k in m if k not in METRIC_INFO)
        lines += _table(["metric", "value"], [[k, num(m[k])] for k in keys])
    else:
        lines.append("metrics.json holds no metrics.")
    lines.append("")

    lines += ["## Label quality vs baselines", ""]
    rows = []
    for r in label_quality(run):
        cells = [NOT_MEASURED if (c.value is None and not c.source) else
                 num(c.value) + (" †" if c.source == "features" else "") for c in r.cells]
        rows.append([r.name] + cells)
    lines += _table(["labels"] + COLUMN_TITLES, rows)
    if any(c.source == "features" for r in label_quality(run) for c in r.cells):
        lines += ["", "† computed from features.parquet (key absent from metrics.json)."]
    lines.append("")

    lines += [f"## Top {TOP_N} features by label AUROC", ""]
    au = run.floats("label_auroc")
    if au is None or not np.isfinite(au).any():
        lines.append("not available (no label_auroc column in features.parquet)")
    else:
        ok = np.flatnonzero(np.isfinite(au))
        top = ok[np.lexsort((run.feature_id[ok], -au[ok]))][:TOP_N]
        label, main = run.cols.get("label"), run.cols.get("main_domain")
        ra, lift = run.floats("random_label_auroc"), run.floats("keyword_hit_lift")
        rows = [[f"#{int(run.feature_id[i])}", (label[i] if label is not None else "") or "(no label)",
                 num(au[i], 3), num(ra[i], 3) if ra is not None else "n/a",
                 num(lift[i], 3) if lift is not None else "n/a", pct(run.density[i]),
                 (main[i] if main is not None else "") or ""] for i in top]
        lines += _table(["feature", "label", "AUROC", "random AUROC", "lift", "density", "main domain"], rows)
    lines.append("")

    lines += ["## Dead and unlabelled features", ""]
    n_dead = int(run.dead.sum())
    lines.append(f"- dead: {n_dead:,} of {run.n:,} features ({pct(n_dead / run.n) if run.n else 'n/a'})")
    unl = unlabelled_live(run)
    if "label" not in run.cols:
        lines.append("- labels: not available (no label column in features.parquet)")
    else:
        why = ", ".join(f"{r}: {n:,}" for r, n in reason_counts(run, unl).most_common())
        lines.append(f"- live but unlabelled: {unl.size:,}" + (f" ({why})" if unl.size else ""))
    lines.append("")
    return "\n".join(lines)
