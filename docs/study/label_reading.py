"""The blind reading of a run's labels (docs/interpretation/reading.md): a sample a reader answers
without seeing any score, and the join of the answers with the run's verdicts.

    label_reading.py sample <run> <seed> <out.md> [--n 30]     30 random live features, blind
    label_reading.py top <run> <out.md> [--n 50]               the n best interpretable by label_score, blind
    label_reading.py changed <before> <after> <out.md>         the features whose verdict a labeller change moved, blind
    label_reading.py join <run> <sample.md> <answers.json>     counts, confusion table, misses (markdown)

A sample item shows the label and the feature's 10 top texts, each behind its source document
(`[Title]` from a wiki id `Title#n`), and nothing else: no verdict, no score. Items are numbered in
the sample's own order; the feature ids stay in an HTML comment the join reads back. The answers
file is a JSON list of {"item", "concept": coherent|token|loose|mixed, "pattern", "label":
right|partial|vague|misleading}; `top` samples need only "item", "concept" and "pattern".
"""

from __future__ import annotations

import argparse
import json
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

CONCEPTS = ("coherent", "token", "loose", "mixed")
LABELS = ("right", "partial", "vague", "misleading")
_IDS = re.compile(r"<!-- features: ([\d,]+) -->")


def _features(run: Path) -> pd.DataFrame:
    return pd.read_parquet(run / "features.parquet")


def _document(text_id: str) -> str:
    return text_id.rsplit("#", 1)[0]


def _write(df: pd.DataFrame, out: Path, title: str) -> None:
    lines = [f"# {title}", "", f"<!-- features: {','.join(str(int(f)) for f in df.feature_id)} -->", ""]
    for item, row in enumerate(df.itertuples(index=False), 1):
        lines += [f"## Item {item}", "", f"Label: {row.label}", ""]
        lines += [f"{n}. [{_document(i)}] {t}" for n, (i, t) in enumerate(zip(row.top_ids[:10], row.top_texts[:10]), 1)]
        lines.append("")
    out.write_text("\n".join(lines), encoding="utf-8")


def sample(run: Path, seed: int, out: Path, n: int) -> None:
    df = _features(run)
    live = df[~df.dead].reset_index(drop=True)
    pick = np.random.default_rng(seed).choice(len(live), size=min(n, len(live)), replace=False)
    _write(live.iloc[pick], out, f"Blind sample: {n} random live features (seed {seed})")


def top(run: Path, out: Path, n: int) -> None:
    df = _features(run)
    # the order summary.md and the report use: label score, ties (many at 1.0) by feature id
    best = df[df.verdict == "interpretable"].sort_values(["label_score", "feature_id"], ascending=[False, True]).head(n)
    # shuffled, so the reader cannot tell the rank either
    _write(best.sample(frac=1.0, random_state=0), out, f"Blind sample: {n} features")


def changed(before: Path, after: Path, out: Path) -> None:
    """The features of one run whose verdict differs between two labellings of it (`after` shown)."""
    old, new = _features(before), _features(after)
    moved = new[old.verdict.to_numpy() != new.verdict.to_numpy()]
    _write(moved.sample(frac=1.0, random_state=0), out, f"Blind sample: {len(moved)} features")


def _joined(run: Path, sample_md: Path, answers: Path) -> pd.DataFrame:
    ids = [int(f) for f in _IDS.search(sample_md.read_text(encoding="utf-8")).group(1).split(",")]
    got = pd.DataFrame(json.loads(answers.read_text(encoding="utf-8")))
    got["feature_id"] = [ids[i - 1] for i in got["item"]]
    keep = [c for c in ("feature_id", "label", "verdict", "label_score", "concept_label") if c in _features(run)]
    return got.rename(columns={"label": "reading"}).merge(_features(run)[keep], on="feature_id")


def _count_table(counts: pd.DataFrame) -> str:
    head = "| | " + " | ".join(counts.columns) + " |\n|---|" + "---|" * len(counts.columns) + "\n"
    return head + "".join(f"| {i} | " + " | ".join(str(v) for v in row) + " |\n" for i, row in counts.iterrows())


def join(run: Path, sample_md: Path, answers: Path) -> str:
    df = _joined(run, sample_md, answers)
    out = [f"{len(df)} features read.", ""]
    if "reading" in df:
        counts = Counter(df.reading)
        out += ["Labels: " + ", ".join(f"{counts.get(k, 0)} {k}" for k in LABELS), ""]
        per = pd.crosstab(df.verdict, df.reading).reindex(columns=list(LABELS), fill_value=0)
        out += ["Label reading per verdict:", "", _count_table(per)]
    conf = pd.crosstab(df.verdict, df.concept).reindex(columns=list(CONCEPTS), fill_value=0)
    out += ["Verdict (rows) against the reader's concept (columns):", "", _count_table(conf)]
    misses = df[
        (df.get("reading", pd.Series("", index=df.index)).isin(["misleading", "vague"]))
        | ((df.verdict == "interpretable") & df.concept.isin(["token", "mixed"]))
        | ((df.verdict == "mixed") & (df.concept == "coherent"))
        | ((df.verdict == "token") & (df.concept != "token"))
    ]
    out += ["Misses (a vague or misleading label, or a verdict the reading contradicts):", ""]
    for row in misses.itertuples(index=False):
        reading = f", label read {row.reading}" if "reading" in df else ""
        out.append(
            f"- feature {row.feature_id} `{row.label}` ({row.verdict}{reading}): "
            f'reader saw {row.concept}, "{row.pattern}"'
        )
    return "\n".join(out) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("sample")
    s.add_argument("run", type=Path), s.add_argument("seed", type=int), s.add_argument("out", type=Path)
    s.add_argument("--n", type=int, default=30)
    t = sub.add_parser("top")
    t.add_argument("run", type=Path), t.add_argument("out", type=Path), t.add_argument("--n", type=int, default=50)
    c = sub.add_parser("changed")
    c.add_argument("before", type=Path), c.add_argument("after", type=Path), c.add_argument("out", type=Path)
    j = sub.add_parser("join")
    j.add_argument("run", type=Path), j.add_argument("sample_md", type=Path), j.add_argument("answers", type=Path)
    args = parser.parse_args()
    if args.cmd == "sample":
        sample(args.run, args.seed, args.out, args.n)
    elif args.cmd == "top":
        top(args.run, args.out, args.n)
    elif args.cmd == "changed":
        changed(args.before, args.after, args.out)
    else:
        print(join(args.run, args.sample_md, args.answers), end="")


if __name__ == "__main__":
    main()
