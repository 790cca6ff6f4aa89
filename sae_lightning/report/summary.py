"""summary.md: the few numbers worth pasting into a lab notebook or a PR, in plain Markdown."""
from __future__ import annotations

import numpy as np

from collections import Counter

from .fmt import md_cell, num, pct
from .load import RunData
from .quality import NOT_MEASURED, label_quality
from .sections import METRIC_INFO, domains_of, model_name
from .verdicts import MEANING, RELABEL_HINT, has_verdicts, verdict_counts, verdicts

TOP_N = 20


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return (["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
            + ["| " + " | ".join(md_cell(c) for c in r) + " |" for r in rows])


def render_summary(run: RunData) -> str:
    cfg, m = run.cfg, run.metrics
    name = run.run_dir.resolve().name
    lines = [f"# SAE run `{name}`", ""]
    facts = [f"{k} {cfg[k]}" for k in ("architecture", "d_in", "d_sae", "k") if cfg.get(k) is not None]
    if model_name(cfg):
        facts.append(f"model {model_name(cfg)}")
    doms = domains_of(run)
    if doms:
        facts.append("domains: " + ", ".join(doms))
    if facts:
        lines += [md_cell(" · ".join(facts)), ""]  # domain names are user data: no raw HTML or Markdown

    lines += ["## Verdicts", ""]
    lines += _table(["verdict", "features", "meaning"],
                    [[v, f"{c:,}", MEANING[v]] for v, c in verdict_counts(run).items()])
    if not has_verdicts(run):
        lines += ["", f"This run has no verdicts: {RELABEL_HINT}."]
    lines.append("")

    lines += ["## Metrics", ""]
    if m:
        keys = [k for k in METRIC_INFO if k in m] + sorted(k for k in m if k not in METRIC_INFO)
        lines += _table(["metric", "value"], [[k, num(m[k])] for k in keys])
    else:
        lines.append("metrics.json holds no metrics.")
    lines.append("")

    lines += ["## Label quality vs baselines", ""]
    blocks = label_quality(run)
    for block in blocks:
        lines += [f"Means, {block.title}:", ""]
        rows = [[r.name] + [NOT_MEASURED if not c.source else num(c.value) + (" †" if c.source == "features" else "")
                            for c in r.cells] for r in block.rows]
        lines += _table(["labels"] + block.columns, rows) + [""]
    if any(c.source == "features" for b in blocks for r in b.rows for c in r.cells):
        lines += ["† computed from features.parquet (key absent from metrics.json).", ""]

    lines += [f"## Top {TOP_N} interpretable features by label score", ""]
    score = run.floats("label_score")
    ok = np.flatnonzero((verdicts(run) == "interpretable") & np.isfinite(score)) if score is not None else []
    if not len(ok):
        lines.append("not available (no interpretable feature with a label_score in features.parquet)")
    else:
        top = ok[np.lexsort((run.feature_id[ok], -score[ok]))][:TOP_N]
        label, main = run.cols.get("label"), run.cols.get("main_domain")
        coh, hard = run.floats("coherence"), run.floats("label_auroc_hard")
        rows = [[f"#{int(run.feature_id[i])}", (label[i] if label is not None else "") or "(no label)",
                 num(score[i], 3), num(coh[i], 3) if coh is not None else "n/a",
                 num(hard[i], 3) if hard is not None else "n/a", pct(run.density[i]),
                 (main[i] if main is not None else "") or ""] for i in top]
        lines += _table(["feature", "label", "label score", "coherence", "AUROC hard", "density", "main domain"], rows)
    lines.append("")

    lines += ["## Dead and unlabelled features", ""]
    n_dead = int(run.dead.sum())
    lines.append(f"- dead: {n_dead:,} of {run.n:,} features ({pct(n_dead / run.n) if run.n else 'n/a'})")
    label, reasons = run.cols.get("label"), run.cols.get("label_reason")
    if label is None:
        lines.append("- labels: not available (no label column in features.parquet)")
    else:
        unl = [i for i in range(run.n) if not run.dead[i] and not label[i]]
        why = Counter((reasons[i] if reasons is not None else "") or "unknown" for i in unl)
        lines.append(f"- live but unlabelled: {len(unl):,}"
                     + (f" ({', '.join(f'{md_cell(r)}: {n:,}' for r, n in why.most_common())})" if unl else ""))
    lines.append("")
    return "\n".join(lines)
