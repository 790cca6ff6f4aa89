"""Markdown excerpts of the study's real outputs, for docs/application/generated/ (run_study.sh).

tables.py run <run>                      the run's settings and metrics
tables.py diff <diff folder> <n>         top n separating features each way, with labels
tables.py matrix <matrix folder>         the domain x domain matrix
tables.py top-feature <diff folder> <side>   the id of the strongest feature firing more in <side>
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from sae_lightning.diff.analysis import DiffResult, DiffSettings  # noqa: E402
from sae_lightning.diff.page import forest_svg  # noqa: E402
from sae_lightning.run_dir import RunDir  # noqa: E402


def md_table(df: pd.DataFrame) -> str:
    head = "| " + " | ".join(df.columns) + " |\n|" + "---|" * len(df.columns) + "\n"
    return head + "".join(
        "| " + " | ".join(str(v).replace("|", "\\|") for v in row) + " |\n" for row in df.itertuples(index=False)
    )


def run_md(run: Path) -> str:
    rd = RunDir(run)
    m = rd.results()  # training metrics + the current labelling's summary
    cfg = json.loads((rd.sae / RunDir.SAE_CFG).read_text())
    info = rd.run_info()
    store = json.loads((Path(info["store_path"]) / "manifest.json").read_text())
    domains = pd.read_parquet(Path(info["store_path"]) / "metadata.parquet", columns=["domain"])["domain"].nunique()
    keys = [
        "fve",
        "l0",
        "dead_frac",
        "retrieval_recall@10",
        "label_auroc_mean",
        "label_auroc_hard_mean",
        "label_precision_mean",
        "tfidf_auroc_hard_mean",
        "random_auroc_hard_mean",
        "coherence_mean",
        "label_score_mean",
        "n_interpretable",
        "n_mixed",
    ]
    return (
        f"SAE: {cfg.get('architecture')} d_sae={cfg.get('d_sae')} k={cfg.get('k')}, {m.get('epochs')} epochs, "
        f"on {store['count']:,} texts of {domains} domains embedded by {store['model_name']} "
        f"({info['val_fraction']:.0%} held out for validation)\n\n"
        + md_table(
            pd.DataFrame(
                {"metric": keys, "value": [f"{m[k]:.3f}" if isinstance(m.get(k), float) else m.get(k) for k in keys]}
            )
        )
    )


def load_diff(folder: Path) -> DiffResult:
    s = json.loads((folder / "summary.json").read_text())
    return DiffResult(
        Path(s["run_dir"]),
        s["a"],
        s["b"],
        s["n_a"],
        s["n_b"],
        pd.read_parquet(folder / "diff.parquet"),
        DiffSettings(**s["settings"]),
        s["model_name"],
    )


def diff_md(folder: Path, n: int) -> str:
    res, out = load_diff(folder), []
    for side in (res.a, res.b):
        t = res.top(side, n)
        rows = pd.DataFrame(
            {
                "feature": [f"#{f}" for f in t["feature_id"]],
                "label": t["label"],
                "verdict": t["verdict"].fillna(""),
                "coherence": [f"{c:.2f}" if c == c else "" for c in t["coherence"]],
                f"rate {res.a}": [f"{v:.1%}" for v in t["rate_a"]],
                f"rate {res.b}": [f"{v:.1%}" for v in t["rate_b"]],
                "log-odds [95% CI]": [
                    f"{a:+.2f} [{lo:+.2f}, {hi:+.2f}]"
                    for a, lo, hi in zip(t["log_odds"], t["log_odds_low"], t["log_odds_high"])
                ],
                "q": [f"{q:.1e}" for q in t["q_value"]],
                f"top text in {side}": [
                    (ex[0][:90] + "…" if len(ex[0]) > 90 else ex[0]) if len(ex) else ""
                    for ex in (t["examples_a"] if side == res.a else t["examples_b"])
                ],
            }
        )
        out.append(f"**More in {side}** (top {n})\n\n" + md_table(rows))
    plot = forest_svg(pd.concat([res.top(res.a, n), res.top(res.b, n).iloc[::-1]]), res.a, res.b)
    return "\n".join(out) + "\n" + plot + "\n"


def matrix_md(folder: Path) -> str:
    m = pd.read_parquet(folder / "matrix.parquet").set_index("domain")
    m.columns = [c.split(" ")[0] for c in m.columns]  # short column heads; rows keep full names
    return md_table(m.reset_index())


def top_feature(folder: Path, side: str) -> str:
    return str(int(load_diff(folder).top(side, 1)["feature_id"].iloc[0]))


if __name__ == "__main__":
    cmd, path = sys.argv[1], Path(sys.argv[2])
    print(
        {
            "run": lambda: run_md(path),
            "diff": lambda: diff_md(path, int(sys.argv[3])),
            "matrix": lambda: matrix_md(path),
            "top-feature": lambda: top_feature(path, sys.argv[3]),
        }[cmd]()
    )
