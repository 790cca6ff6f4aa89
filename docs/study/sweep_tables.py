"""The SAE study's tables and Pareto figure, from the multirun folders of docs/study/sweep.sh.

    python docs/study/sweep_tables.py <sweep folder> [<tables folder> [<figure folder>]]

<sweep folder> holds the multiruns (`<folder>/<n>_<domain>/`) and, beside each job, GNU time's
reports of its labelling (`<job>.label.time`) and of its training alone (`<job>.train.time`, seed 0
only); a job's axis is its `hparams_search=study_<axis>`, its point its other overrides less the
seed, and the seeds of a point are averaged with a t-interval.
Writes sweep.json, sweep.md and sweep_pareto.svg (default: docs/application/generated and
docs/application/figures). Run folders are read, never written."""

from __future__ import annotations

import itertools
import json
import math
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from safetensors.numpy import load_file
from scipy import stats

from sae_lightning.run_dir import RunDir
from sae_lightning.run_schema import DEAD, HEADLINE, INTERPRETABLE, MIXED, TOKEN, WEAK, headline_key

STABLE_COSINE = 0.9  # a feature is stable when some feature of the other seed's SAE has a decoder cosine above this
IGNORED = ("seed=", "hparams_search=", "trainer.enable_progress_bar=", "labeling.judge_model=")
# column -> (header, digits): the order of the table
COLUMNS = {
    "fve": ("val fve", 3),
    "l0": ("L0", 1),
    "dead_frac": ("dead", 3),
    "dense_frac": ("dense", 3),
    "interpretable": ("interpretable / live", 3),
    "n_interpretable": ("interpretable (count)", 0),
    "token": ("token / live", 3),
    "mixed": ("mixed / live", 3),
    HEADLINE: (HEADLINE, 3),
    f"judge_{HEADLINE}": ("by mpnet judge", 3),
    "stability": ("stable (cos > 0.9)", 3),
    "fit_s": ("fit s", 0),
    "label_s": ("label s", 0),
    "train_mib": ("train peak MiB", 0),
    "label_mib": ("label peak MiB", 0),
}


def run_row(job: Path) -> dict:
    """One finished job's figures (shares are of live features: every verdict but dead)."""
    run = RunDir(job)
    label_time = job.with_name(job.name + ".label.time")
    # only a labelling sweep.sh's label step made (its time report beside the job) counts: a job it
    # has not reached yet keeps the labels of an older labeller, whose verdicts are not this table's
    m, labeling = run.metrics(), run.labeling() if label_time.is_file() else None
    labels = labeling.summary() if labeling else {}
    verdicts = pd.read_parquet(labeling.features, columns=["verdict"])["verdict"].value_counts() if labeling else {}
    live = sum(int(verdicts.get(v, 0)) for v in (INTERPRETABLE, TOKEN, MIXED, WEAK))
    overrides = yaml.safe_load((job / ".hydra/overrides.yaml").read_text())
    limit = yaml.safe_load(run.hydra_config.read_text())["domain"].get("limit")
    seed = next(int(o.split("=", 1)[1]) for o in overrides if o.startswith("seed="))
    point = " ".join(sorted(o for o in overrides if not o.startswith(IGNORED))) or "default"
    axis = next(o.split("=", 1)[1] for o in overrides if o.startswith("hparams_search=")).removeprefix("study_")
    judged = labels.get(headline_key(judged=True))
    return {
        "axis": axis,
        "point": point,
        "seed": seed,
        "full_corpus": limit is None,
        "job": str(job),
        "fve": m.get("fve"),
        "l0": m.get("l0"),
        "dead_frac": m.get("dead_frac"),
        "dense_frac": m.get("dense_frac"),
        "interpretable": int(verdicts.get(INTERPRETABLE, 0)) / live if live else None,
        "n_interpretable": int(verdicts.get(INTERPRETABLE, 0)) if labeling else None,
        "token": int(verdicts.get(TOKEN, 0)) / live if live else None,
        "mixed": int(verdicts.get(MIXED, 0)) / live if live else None,
        "n_dead": int(verdicts.get(DEAD, 0)),
        HEADLINE: labels.get(headline_key()),
        f"judge_{HEADLINE}": judged,
        "fit_s": run.timings().get("fit"),
        "label_s": (labeling.info().get("timings_s") or {}).get("total") if labeling else None,
        "train_mib": peak_rss_mib(job.with_name(job.name + ".train.time")),
        "label_mib": peak_rss_mib(label_time),
    }


def unit_rows(job: str) -> np.ndarray:
    w = load_file(str(RunDir(job).sae / RunDir.SAE_WEIGHTS))["W_dec"].astype(np.float64)
    return w / np.maximum(np.linalg.norm(w, axis=1, keepdims=True), 1e-12)


def stability(a: str, b: str) -> float:
    """Share of the features of both SAEs whose decoder direction has a cosine above STABLE_COSINE
    with some feature of the other one (the mean of the two directions)."""
    cos = unit_rows(a) @ unit_rows(b).T
    return float(((cos.max(axis=1) > STABLE_COSINE).mean() + (cos.max(axis=0) > STABLE_COSINE).mean()) / 2)


def interval(values: list) -> dict:
    """Mean and the half-width of a 95 % t-interval over seeds (t 12.7 at 2 seeds: wide)."""
    v = np.array([x for x in values if x is not None and not math.isnan(x)], dtype=float)
    if len(v) == 0:
        return {"mean": None, "ci95": None, "n": 0}
    half = float(stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / math.sqrt(len(v))) if len(v) > 1 else None
    return {"mean": float(v.mean()), "ci95": half, "n": int(len(v))}


def peak_rss_mib(report: Path) -> float | None:
    """GNU time's maximum resident set size in a `time -v` report, in MiB (None without one)."""
    hit = re.search(r"Maximum resident set size \(kbytes\): (\d+)", report.read_text()) if report.is_file() else None
    return int(hit.group(1)) / 1024 if hit else None


def aggregate(sweep: Path) -> dict:
    jobs = sorted(p.parent for p in sweep.glob("*/*/metrics.json"))
    rows = [run_row(j) for j in jobs]
    points = {}
    by_point = lambda r: (r["axis"], r["point"])  # noqa: E731 (an axis' config file fixes what its overrides do not say)
    for (axis, point), group in itertools.groupby(sorted(rows, key=lambda r: (*by_point(r), r["seed"])), key=by_point):
        group = list(group)
        pairs = [stability(a["job"], b["job"]) for a, b in itertools.combinations(group, 2)]
        figures = {c: interval([r[c] for r in group]) for c in COLUMNS if c != "stability"}
        figures["stability"] = (
            interval(pairs) if len(pairs) > 1 else {"mean": pairs[0] if pairs else None, "ci95": None, "n": len(pairs)}
        )
        points[f"{axis}: {point}"] = {
            "axis": axis,
            "point": point,
            "full_corpus": group[0]["full_corpus"],
            "seeds": [r["seed"] for r in group],
            "figures": figures,
            "runs": [{k: v for k, v in r.items() if k != "job"} for r in group],
        }
    return {
        "stable_cosine": STABLE_COSINE,
        "interval": "95 % t-interval over seeds",
        "points": points,
    }


def cell(fig: dict, digits: int) -> str:
    if fig["mean"] is None:
        return "–"
    text = f"{fig['mean']:.{digits}f}"
    return text + (f" ± {fig['ci95']:.{digits}f}" if fig["ci95"] is not None else "")


def table(study: dict) -> str:
    head = ["axis", "point", "seeds", *(h for h, _ in COLUMNS.values())]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for _, p in sorted(study["points"].items(), key=lambda kv: (kv[1]["axis"] != "base", kv[0])):
        cells = [cell(p["figures"][c], d) for c, (_, d) in COLUMNS.items()]
        lines.append("| " + " | ".join([p["axis"], f"`{p['point']}`", str(len(p["seeds"])), *cells]) + " |")
    return "\n".join(lines) + "\n"


REFERENCE, NEW_DEFAULT = "base: default", "candidates: sae.d_sae=3072"  # the pre-study default run and the new one
# points set beside the new default against the targets: (row, column header)
ALTERNATIVES = [("epochs_long: trainer.max_epochs=40", "the new default, 40 epochs")]
# the targets for the new default run: column -> (wording, the bar it must reach)
TARGETS = {
    "fve": ("≥ 0.75", lambda ref: 0.75),
    "interpretable": ("≥ 0.50", lambda ref: 0.50),
    HEADLINE: ("≥ the reference", lambda ref: ref),
}


def reached(fig: dict, bar: float | None) -> str:
    """Whether a mean with its interval clears a bar: by the whole interval, by the mean alone, or not."""
    mean, half = fig["mean"], fig["ci95"] or 0.0
    if bar is None or mean is None:
        return "–"
    return "yes" if mean - half >= bar else "by the mean, not the interval" if mean >= bar else "**no**"


def targets_table(study: dict) -> str:
    """The reference, the new default and its alternatives against the targets, each mean with its
    interval and whether it reaches the target."""
    ref, new = study["points"].get(REFERENCE), study["points"].get(NEW_DEFAULT)
    if not (ref and new):
        return ""
    others = [(study["points"][name], header) for name, header in ALTERNATIVES if name in study["points"]]
    head = ["figure", "target", "before (k 32, 10 epochs)", "new default (k 16, 20 epochs)", "reached"]
    for _, header in others:
        head += [header, "reached"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for col in (*TARGETS, "n_interpretable", f"judge_{HEADLINE}"):
        header, digits = COLUMNS[col]
        wording, bar = TARGETS.get(col, ("–", None))
        level = bar(ref["figures"][col]["mean"]) if bar and ref["figures"][col]["mean"] is not None else None
        cells = [header, wording, cell(ref["figures"][col], digits)]
        for point in (new, *(p for p, _ in others)):
            cells += [cell(point["figures"][col], digits), reached(point["figures"][col], level)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def pareto_svg(study: dict, width: int = 760, height: int = 440, pad: int = 56) -> str:
    """Interpretable features (count) against val fve on the full corpus, one dot per point with
    its intervals; the points no other point beats on both are red."""
    pts = [
        (n, p["figures"])
        for n, p in study["points"].items()
        if p["full_corpus"]
        and p["figures"]["fve"]["mean"] is not None
        and p["figures"]["n_interpretable"]["mean"] is not None
    ]
    if not pts:
        return ""
    xs = [f["fve"]["mean"] for _, f in pts]
    ys = [f["n_interpretable"]["mean"] for _, f in pts]
    x0, x1 = min(xs) - 0.02, max(xs) + 0.02
    y0, y1 = 0.0, max(ys) * 1.1
    sx = lambda x: pad + (x - x0) / (x1 - x0) * (width - 3 * pad)  # noqa: E731 (room for the names on the right)
    sy = lambda y: height - pad - (y - y0) / (y1 - y0) * (height - 2 * pad)  # noqa: E731
    front = {
        n
        for n, f in pts
        if not any(
            g["fve"]["mean"] >= f["fve"]["mean"]
            and g["n_interpretable"]["mean"] >= f["n_interpretable"]["mean"]
            and g is not f
            and (g["fve"]["mean"], g["n_interpretable"]["mean"]) != (f["fve"]["mean"], f["n_interpretable"]["mean"])
            for _, g in pts
        )
    }
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        'font-family="sans-serif" font-size="10">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<line x1="{pad}" y1="{height - pad}" x2="{width - 2 * pad}" y2="{height - pad}" stroke="black"/>',
        f'<line x1="{pad}" y1="{pad}" x2="{pad}" y2="{height - pad}" stroke="black"/>',
        f'<text x="{width / 2}" y="{height - 16}" text-anchor="middle">'
        "validation fve (mean of seeds, bars: 95 % t-interval)</text>",
        f'<text x="16" y="{height / 2}" text-anchor="middle" transform="rotate(-90 16 {height / 2})">'
        "interpretable features (count)</text>",
    ]
    for t in np.linspace(x0, x1, 5):
        out.append(f'<text x="{sx(t):.1f}" y="{height - pad + 14}" text-anchor="middle">{t:.2f}</text>')
    for t in np.linspace(y0, y1, 5):
        out.append(f'<text x="{pad - 6}" y="{sy(t) + 4:.1f}" text-anchor="end">{t:.0f}</text>')
    for name, f in pts:
        x, y = f["fve"]["mean"], f["n_interpretable"]["mean"]
        hx, hy = f["fve"]["ci95"] or 0.0, f["n_interpretable"]["ci95"] or 0.0
        out.append(
            f'<line x1="{sx(max(x - hx, x0)):.1f}" y1="{sy(y):.1f}" '
            f'x2="{sx(min(x + hx, x1)):.1f}" y2="{sy(y):.1f}" stroke="#999"/>'
        )
        out.append(
            f'<line x1="{sx(x):.1f}" y1="{sy(max(y - hy, y0)):.1f}" '
            f'x2="{sx(x):.1f}" y2="{sy(min(y + hy, y1)):.1f}" stroke="#999"/>'
        )
        colour = "#d62728" if name in front else "#1f77b4"
        out.append(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="4" fill="{colour}"><title>{name}</title></circle>')
        out.append(f'<text x="{sx(x) + 6:.1f}" y="{sy(y) - 6:.1f}" fill="{colour}">{name}</text>')
    return "\n".join(out + ["</svg>", ""])


def main(argv: list[str]) -> None:
    sweep = Path(argv[0])
    gen = Path(argv[1]) if len(argv) > 1 else Path("docs/application/generated")
    fig = Path(argv[2]) if len(argv) > 2 else Path("docs/application/figures")
    study = aggregate(sweep)
    (gen / "sweep.json").write_text(json.dumps(study, indent=1, sort_keys=True) + "\n")
    (gen / "sweep.md").write_text(table(study))
    (gen / "sweep_targets.md").write_text(targets_table(study))
    (fig / "sweep_pareto.svg").write_text(pareto_svg(study))
    print(table(study))


if __name__ == "__main__":
    main(sys.argv[1:])
