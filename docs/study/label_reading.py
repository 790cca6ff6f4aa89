"""The blind reading of a run's labels (docs/interpretation/reading.md): a sample a reader answers
without seeing any score, and the join of the answers with the run's verdicts.

    label_reading.py sample <run> <seed> <out.md> [--n 30]     30 random live features, blind
    label_reading.py top <run> <out.md> [--n 50]               the n best interpretable by label_score, blind
    label_reading.py changed <before> <after> <out.md>         the features whose verdict a labeller change moved, blind
    label_reading.py pair <before> <after> <seed> <out.md> [--n 30]  labels a change rewrote, both shown as A and B
    label_reading.py pair-join <before> <after> <pair.md> <answers.json>  which label the reader preferred
    label_reading.py join <run> <sample.md> <answers.json>     counts, confusion table, misses (markdown)

A sample item shows the label and the feature's 10 top texts, each behind its source document
(`[Title]` from a wiki id `Title#n`), and nothing else: no verdict, no score. Items are numbered in
the sample's own order; the feature ids stay in an HTML comment the join reads back. The answers
file is a JSON list of {"item", "concept": coherent|token|loose|mixed, "pattern", "label":
right|partial|vague|misleading}; `top` samples need only "item", "concept" and "pattern".
A `pair` sample shows the two labellings' labels of one feature as A and B, in a seeded random
order the HTML comment keeps; its answers are {"item", "better": A|B|same}.
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


def pair(before: Path, after: Path, seed: int, out: Path, n: int) -> None:
    """n random features whose label differs between two labellings of one run, both labels shown."""
    old, new = _features(before), _features(after)
    rewrote = np.flatnonzero((old.label != new.label).to_numpy() & ~new.dead.to_numpy())
    rng = np.random.default_rng(seed)
    pick = rng.choice(rewrote, size=min(n, len(rewrote)), replace=False)
    flips = rng.integers(0, 2, size=len(pick))  # 1: the new label is A
    lines = [f"# Blind pairs: {len(pick)} features, two labels each (seed {seed})", ""]
    lines += [f"<!-- features: {','.join(str(int(f)) for f in new.feature_id.iloc[pick])} -->"]
    lines += [f"<!-- new is A: {','.join(str(int(x)) for x in flips)} -->", ""]
    for item, (i, flip) in enumerate(zip(pick, flips), 1):
        a, b = (new.label.iloc[i], old.label.iloc[i]) if flip else (old.label.iloc[i], new.label.iloc[i])
        row = new.iloc[i]
        lines += [f"## Item {item}", "", f"Label A: {a}", f"Label B: {b}", ""]
        lines += [f"{k}. [{_document(d)}] {t}" for k, (d, t) in enumerate(zip(row.top_ids[:10], row.top_texts[:10]), 1)]
        lines.append("")
    out.write_text("\n".join(lines), encoding="utf-8")


def pair_join(before: Path, after: Path, pair_md: Path, answers: Path) -> str:
    text = pair_md.read_text(encoding="utf-8")
    ids = [int(f) for f in _IDS.search(text).group(1).split(",")]
    new_is_a = [x == "1" for x in re.search(r"<!-- new is A: ([\d,]+) -->", text).group(1).split(",")]
    old, new = (_features(p).set_index("feature_id") for p in (before, after))
    out, tally = [], Counter()
    for a in json.loads(answers.read_text(encoding="utf-8")):
        f, better = ids[a["item"] - 1], a["better"]
        won = "same" if better == "same" else ("new" if (better == "A") == new_is_a[a["item"] - 1] else "old")
        tally[won] += 1
        out.append(
            f"- feature {f}: `{old.label[f]}` -> `{new.label[f]}`: {won} better"
            if won != "same"
            else f"- feature {f}: `{old.label[f]}` -> `{new.label[f]}`: same"
        )
    head = (
        f"{sum(tally.values())} pairs read: new better {tally['new']}, old better {tally['old']}, same {tally['same']}."
    )
    return "\n".join([head, "", *out]) + "\n"


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
    p = sub.add_parser("pair")
    p.add_argument("before", type=Path), p.add_argument("after", type=Path), p.add_argument("seed", type=int)
    p.add_argument("out", type=Path), p.add_argument("--n", type=int, default=30)
    pj = sub.add_parser("pair-join")
    pj.add_argument("before", type=Path), pj.add_argument("after", type=Path)
    pj.add_argument("pair_md", type=Path), pj.add_argument("answers", type=Path)
    j = sub.add_parser("join")
    j.add_argument("run", type=Path), j.add_argument("sample_md", type=Path), j.add_argument("answers", type=Path)
    args = parser.parse_args()
    if args.cmd == "sample":
        sample(args.run, args.seed, args.out, args.n)
    elif args.cmd == "top":
        top(args.run, args.out, args.n)
    elif args.cmd == "changed":
        changed(args.before, args.after, args.out)
    elif args.cmd == "pair":
        pair(args.before, args.after, args.seed, args.out, args.n)
    elif args.cmd == "pair-join":
        print(pair_join(args.before, args.after, args.pair_md, args.answers), end="")
    else:
        print(join(args.run, args.sample_md, args.answers), end="")


if __name__ == "__main__":
    main()
