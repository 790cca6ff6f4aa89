"""The page's feature data: one compact JSON document the page's script renders cards from.

Rendering all 3,072 cards as HTML made a 9.6 MB page 896,000 px tall. The page now embeds the
features column-wise (one array per field, numbers rounded, domains and verdicts as indices) and
draws a page of cards at a time. Texts are the bulk: `text_plan` picks how many top texts per
feature, each cut to how many characters, so that all texts fit TEXT_BUDGET bytes.

Every feature has its core fields (id, verdict, label, density, main domain, map position: what
the map, filters and sorting need, ~70 bytes). When even MIN_TEXTS texts of MIN_CHARS for every
feature exceed the budget (d_sae beyond ~8k), the card details (texts, keywords, scores, domain
shares) are embedded for the most confident features that fit, in the page's confidence order,
and `detail` lists their rows; the other cards say where the rest is. So the page stays a few MB
at any d_sae: at 16,384 features the synthetic test's page is ~4.3 MB (~1.2 MB of it core).
"""

from __future__ import annotations

import json
import math

import numpy as np

from ..run_schema import DEAD, INTERPRETABLE, LABEL_SETS, SCORES
from .featuremap import map_coordinates
from .load import RunData
from .verdicts import CARD_NOTES, NAMES, confidence_rank, read_verdicts

MAX_TEXTS, MIN_TEXTS = 8, 3
MAX_CHARS, MIN_CHARS = 300, 150  # below ~150 chars a text loses its context: show fewer texts instead
MAX_KEYWORDS = 10
TEXT_BUDGET = 4_000_000  # UTF-8 bytes of top texts in the page: ~1.3 KB per feature at 3,072 features
DETAIL_BUDGET = 3_000_000  # bytes of card details when not every feature's fit (d_sae beyond ~8k)
# short names of the label sets in a card's score grid, in run_schema.LABEL_SETS' order
BASELINE_NAMES = {"label": "label", "tfidf": "TF-IDF", "random": "random", "seed": "seed", "bertopic": "BERTopic"}
SCORE_TITLES = {"auroc": "AUROC", "auroc_hard": "AUROC hard", "precision": "precision", "recall": "recall"}
# Per-feature scores shown in a card's score grid: column -> (row: label source, grid column).
SCORE_GRID = {
    **{f"{src}_{key}": (BASELINE_NAMES[src], SCORE_TITLES[key]) for src in LABEL_SETS for key in SCORES},
    **{
        f"judge_{src}_{key}": (BASELINE_NAMES[src], f"judge {SCORE_TITLES[key]}")
        for src in LABEL_SETS
        for key in ("auroc", "auroc_hard")
    },
}


def _round(v, digits: int = 3):
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return round(f, digits) if math.isfinite(f) else None


def _floats(run: RunData, name: str, digits: int = 3) -> list | None:
    col = run.cols.get(name)
    return None if col is None else [_round(v, digits) for v in col]


def text_plan(texts: list[list[str]], budget: int = TEXT_BUDGET) -> tuple[int, int, bool]:
    """(texts per feature, max chars per text, whether all features fit) keeping all texts within
    `budget` UTF-8 bytes. Prefers all MAX_TEXTS at full length, then shorter texts down to
    MIN_CHARS, then fewer texts; when even MIN_TEXTS of MIN_CHARS do not fit, the minimum plan
    with fits=False (the caller then embeds texts for as many features as fit)."""
    lens = np.zeros((len(texts), MAX_TEXTS))
    ratio = np.ones((len(texts), MAX_TEXTS))  # bytes per char (Greek or CJK text costs 2-3)
    for i, tx in enumerate(texts):
        for j, t in enumerate((tx or [])[:MAX_TEXTS]):
            t = t or ""
            lens[i, j] = len(t)
            if t:
                ratio[i, j] = len(json.dumps(t, ensure_ascii=False).encode()) / len(t)

    def size(k: int, cap: int) -> float:
        return float((np.minimum(lens[:, :k], cap) * ratio[:, :k]).sum())

    for k in range(MAX_TEXTS, MIN_TEXTS - 1, -1):
        if size(k, MAX_CHARS) <= budget:
            return k, MAX_CHARS, True
        if size(k, MIN_CHARS) <= budget:
            lo, hi = MIN_CHARS, MAX_CHARS  # largest cap that fits: lo fits, hi does not
            while hi - lo > 1:
                mid = (lo + hi) // 2
                lo, hi = (mid, hi) if size(k, mid) <= budget else (lo, mid)
            return k, lo, True
    return MIN_TEXTS, MIN_CHARS, False


def _clip(t: str, cap: int) -> str:
    return t if len(t) <= cap else t[:cap].rstrip() + "…"


def confidence_order(run: RunData, verdict_index: list[int]) -> np.ndarray:
    """Rows as the page's default sort shows them: interpretable, mixed, token, weak, then the
    rest, each by label score (highest first), ties by row."""
    score = run.floats("label_score")
    score = np.nan_to_num(score, nan=0.0) if score is not None else np.zeros(run.n)
    rank = np.array([confidence_rank(v) for v in verdict_index], dtype=np.int64)
    return np.lexsort((np.arange(run.n), -score, -rank))


def detail_rows(
    run: RunData, texts: list[list[str]], order: np.ndarray, k: int, cap: int, budget: int = DETAIL_BUDGET
) -> list[int]:
    """The rows whose card details (k texts cut to cap chars, keywords, scores, shares; measured as
    JSON) fit the budget together, taken in `order`."""
    extra = [run.cols.get(col) for col in ("keywords", "tfidf_label", "top_acts", "top_domains", *SCORE_GRID)]
    extra = [col for col in extra if col is not None]

    def cost(r: int) -> int:
        parts = [_clip(t or "", cap) for t in (texts[r] or [])[:k]] + [_jsonable(col[r]) for col in extra]
        return len(json.dumps(parts, ensure_ascii=False, separators=(",", ":")).encode()) + 8 * len(
            run.domain_shares[r]
        )

    rows, used = [], 0
    for r in order:  # stop at the first row that does not fit: the rest is never measured
        used += cost(int(r))
        if used > budget:
            break
        rows.append(int(r))
    return sorted(rows)


def _jsonable(v):
    if isinstance(v, (list, tuple, np.ndarray)):
        return [_jsonable(x) for x in list(v)[:MAX_TEXTS]]
    return (
        _round(v) if isinstance(v, (float, np.floating)) else (v if v is None or isinstance(v, (int, str)) else str(v))
    )


def feature_data(run: RunData, domains: list[str]) -> dict:
    """Everything the page's script needs, column-wise. Core columns: index i = row i of
    features.parquet. Detail columns: index j = row detail[j] (all rows when detail is None)."""
    dom_index = {d: i for i, d in enumerate(domains)}
    c = run.cols
    n = run.n
    empty: list = [None] * n
    texts = c.get("top_texts") or [[] for _ in range(n)]
    verdict = [NAMES.index(v) for v in read_verdicts(run)]
    k, cap, fits = text_plan(texts)
    detail = None if fits else detail_rows(run, texts, confidence_order(run, verdict), k, cap)
    rows = range(n) if detail is None else detail

    def pick(col: list) -> list:
        return col if detail is None else [col[r] for r in detail]

    acts, tdoms = c.get("top_acts") or empty, c.get("top_domains") or empty
    shares = [
        [
            [dom_index[d], round(v, 3)]
            for d, v in sorted(run.domain_shares[r].items(), key=lambda kv: -kv[1])
            if v >= 0.01 and d in dom_index
        ]
        for r in rows
    ]
    main = c.get("main_domain") or empty
    data = {
        "n": n,
        "domains": domains,
        "verdicts": NAMES,
        "texts_per_card": k,
        "text_chars": cap,
        "rank": [confidence_rank(i) for i in range(len(NAMES))],
        "dead": NAMES.index(DEAD),
        "trusted": NAMES.index(INTERPRETABLE),  # the verdict whose label score is a confidence
        "notes": [CARD_NOTES.get(v) for v in NAMES],  # per verdict code: [warning, score follows] or null
        "detail": detail,
        "id": [int(x) for x in run.feature_id],
        "verdict": verdict,
        "label": [v or "" for v in (c.get("label") or [""] * n)],
        "why": [v or "" for v in (c.get("label_reason") or [""] * n)],
        "density": [_round(v, 4) for v in run.density],
        "main": [dom_index.get(d) if d else None for d in main],
        "tfidf": [v or "" for v in pick(c.get("tfidf_label") or [""] * n)],
        "keywords": [list(v or [])[:MAX_KEYWORDS] for v in pick(c.get("keywords") or empty)],
        "shares": shares,
        "texts": [[_clip(t or "", cap) for t in (tx or [])[:k]] for tx in pick(texts)],
        "acts": [[_round(a, 3) for a in (ac or [])[:k]] for ac in pick(acts)],
        "tdom": [[dom_index.get(d) for d in (td or [])[:k]] for td in pick(tdoms)],
        "scores": {col: pick(_floats(run, col)) for col in SCORE_GRID if col in c},
        "score_grid": {col: SCORE_GRID[col] for col in SCORE_GRID if col in c},
    }
    for name in ("coherence", "label_score", "domain_specificity"):
        data[name] = _floats(run, name)
    if run.W_dec is not None and run.W_dec.ndim == 2 and n:
        ok = (run.feature_id >= 0) & (run.feature_id < run.W_dec.shape[0])
        xy = np.full((n, 2), np.nan)
        xy[ok] = map_coordinates(run.W_dec[run.feature_id[ok]], ~run.dead[ok])
        data["xy"] = [
            None if not ok[i] else [int(round(1000 * xy[i, 0])), int(round(1000 * xy[i, 1]))] for i in range(n)
        ]
    return data
