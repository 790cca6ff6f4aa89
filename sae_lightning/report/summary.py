"""summary.md: the few numbers worth pasting into a lab notebook or a PR, in plain Markdown,
from templates/summary.md.j2 (every table cell through the `md` filter: labels and domain names
are user data, and must bring no pipes, line breaks or raw HTML into the table)."""

from __future__ import annotations

from collections import Counter

import numpy as np

from ..pages import render
from ..pages.fmt import num, pct
from ..run_schema import INTERPRETABLE
from .load import RunData
from .quality import NOT_MEASURED, label_quality
from .sections import domains_of, metric_keys, model_name, quality_line
from .verdicts import MEANING, read_verdicts, verdict_counts

TOP_N = 20


def _top(run: RunData) -> list[list[str]]:
    """The TOP_N interpretable features by label score (highest first, ties by id)."""
    score = run.floats("label_score")
    if score is None:
        return []
    ok = np.flatnonzero((read_verdicts(run) == INTERPRETABLE) & np.isfinite(score))
    label, main = run.cols.get("label"), run.cols.get("main_domain")
    coh, hard = run.floats("coherence"), run.floats("label_auroc_hard")
    return [
        [
            f"#{int(run.feature_id[i])}",
            (label[i] if label is not None else "") or "(no label)",
            num(score[i], 3),
            num(coh[i], 3) if coh is not None else "n/a",
            num(hard[i], 3) if hard is not None else "n/a",
            pct(run.density[i]),
            (main[i] if main is not None else "") or "",
        ]
        for i in ok[np.lexsort((run.feature_id[ok], -score[ok]))][:TOP_N]
    ]


def _unlabelled(run: RunData) -> tuple[int, list[tuple[str, int]]] | None:
    """(live features without a label, their label_reason counts); None without a label column."""
    label, reasons = run.cols.get("label"), run.cols.get("label_reason")
    if label is None:
        return None
    unl = [i for i in range(run.n) if not run.dead[i] and not label[i]]
    why = Counter((reasons[i] if reasons is not None else "") or "unknown" for i in unl)
    return len(unl), why.most_common()


def _quality_cell(c) -> str:
    return NOT_MEASURED if not c.source else num(c.value) + (" †" if c.source == "features" else "")


def render_summary(run: RunData) -> str:
    cfg = run.cfg
    facts = [f"{k} {cfg[k]}" for k in ("architecture", "d_in", "d_sae", "k") if cfg.get(k) is not None]
    facts += [f"model {model_name(cfg)}"] if model_name(cfg) else []
    facts += ["domains: " + ", ".join(domains_of(run))] if domains_of(run) else []
    blocks = label_quality(run)
    n_dead = int(run.dead.sum())
    return render(
        "sae_lightning.report",
        "summary.md.j2",
        quality=quality_line(run),
        title=run.run_dir.resolve().name,
        sections=[],
        facts=" · ".join(facts),
        verdicts=[(v, c, MEANING[v]) for v, c in verdict_counts(run).items()],
        metrics=[(k, num(run.metrics[k])) for k in metric_keys(run.metrics)],
        blocks=[(b.title, b.columns, [[r.name] + [_quality_cell(c) for c in r.cells] for r in b.rows]) for b in blocks],
        top_n=TOP_N,
        top=_top(run),
        from_features=any(c.source == "features" for b in blocks for r in b.rows for c in r.cells),
        n=run.n,
        n_dead=n_dead,
        dead_pct=pct(n_dead / run.n) if run.n else "n/a",
        unlabelled=_unlabelled(run),
    )
