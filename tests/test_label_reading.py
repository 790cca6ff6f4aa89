"""docs/study/label_reading.py: the blind pair sample hides which label is new, and its join undoes
the shuffle."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]


def _module():
    spec = importlib.util.spec_from_file_location("label_reading", ROOT / "docs/study/label_reading.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _labelling(folder: Path, labels: list[str]) -> Path:
    folder.mkdir()
    n = len(labels)
    pd.DataFrame(
        {
            "feature_id": range(n),
            "dead": [False] * n,
            "label": labels,
            "top_ids": [[f"Doc {i}#0", f"Other {i}#1"] for i in range(n)],
            "top_texts": [[f"text {i} one", f"text {i} two"] for i in range(n)],
        }
    ).to_parquet(folder / "features.parquet")
    return folder


def test_a_pair_sample_hides_the_new_label_and_its_join_finds_it(tmp_path):
    lr = _module()
    old = _labelling(tmp_path / "old", ["theorems — theorem", "same", "acids — acid", "markets — market"])
    new = _labelling(tmp_path / "new", ["theorems", "same", "acids", "markets"])
    out = tmp_path / "pairs.md"
    lr.pair(old, new, 5, out, n=30)
    text = out.read_text(encoding="utf-8")
    reader_view = "\n".join(line for line in text.splitlines() if not line.startswith("<!--"))
    assert reader_view.count("## Item") == 3 and "same" not in reader_view  # unchanged labels are not asked
    assert "new" not in reader_view.lower() and "old" not in reader_view.lower()
    # the reader prefers, item by item, whichever label is the shorter: the new one every time
    items = reader_view.split("## Item ")[1:]
    answers = []
    for item in items:
        a = item.split("Label A: ")[1].splitlines()[0]
        b = item.split("Label B: ")[1].splitlines()[0]
        answers.append({"item": int(item.split()[0]), "better": "A" if len(a) < len(b) else "B"})
    (tmp_path / "answers.json").write_text(json.dumps(answers), encoding="utf-8")
    joined = lr.pair_join(old, new, out, tmp_path / "answers.json")
    assert joined.startswith("3 pairs read: new better 3, old better 0, same 0.")
