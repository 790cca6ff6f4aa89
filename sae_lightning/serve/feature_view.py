"""The Feature page: one feature as Neuronpedia's dashboards show one, from the run's own files.

Label, head concept, keywords; verdict and scores beside the baselines (the report's score grid:
label, TF-IDF and random labels by AUROC, hard-negative AUROC, precision, recall); the top texts
of the labelling, and texts sampled over the whole range of its activations on the store; an
activation histogram and the domain shares; its family; the nearest features by decoder cosine;
in a multi-run server, its counterpart in each other run."""

from __future__ import annotations

import math

import numpy as np

from ..pages import plots
from ..pages.colors import DomainColors
from ..report.feature_data import SCORE_GRID
from .activations import range_sample
from .state import ServedRun

RANGE_TEXTS = 10
NEAREST = 10
TEXT_CHARS = 400
TOP_TEXTS = 10  # of the labelling's top texts (features.parquet keeps more)


def _clip(text: str) -> str:
    return text if len(text) <= TEXT_CHARS else text[:TEXT_CHARS].rstrip() + "…"


def score_grid(cat, row: int) -> dict:
    """{rows: label sources, cols: score names, cells: {(row, col): value}} of the scores present."""
    cells = {}
    for col, (source, title) in SCORE_GRID.items():
        v = cat.col(col, row)
        if v is not None and math.isfinite(float(v)):
            cells[(source, title)] = float(v)
    rows = list(dict.fromkeys(s for s, _ in cells))
    cols = list(dict.fromkeys(t for _, t in cells))
    return {"rows": rows, "cols": cols, "cells": cells}


def _ref(cat, fid: int) -> dict:
    row = cat.row_of.get(int(fid))
    return {
        "id": int(fid),
        "label": cat.label[row] if row is not None else "",
        "verdict": cat.verdict[row] if row is not None else "",
    }


def family_part(cat, fid: int) -> list[dict]:
    out = []
    for fam_id in cat.families_of.get(fid, []):
        fam = cat.family(fam_id)
        out.append(
            {
                "id": fam_id,
                "label": fam.get("label") or "",
                "parent": _ref(cat, fam["parent"]),
                "children": [_ref(cat, c) for c in fam["children"] or []],
                "is_parent": int(fam["parent"]) == fid,
            }
        )
    return out


def feature_page(served: ServedRun, fid: int, counterparts: list[dict]) -> dict:
    lab = served.labelled()
    cat = lab.catalog
    row = cat.row_of.get(fid)
    meta = lab.run.store.metadata()
    colors = DomainColors(served.store_domains)
    rows, acts = served.acts.column(fid)
    sample = range_sample(acts, RANGE_TEXTS)
    range_texts = [
        {
            "act": float(acts[i]),
            "domain": str(meta["domain"].iat[rows[i]]),
            "cls": colors.cls(str(meta["domain"].iat[rows[i]])),
            "text": _clip(str(meta["text"].iat[rows[i]])),
            "rank": int(i) + 1,
        }
        for i in sample
    ]
    top = []
    if row is not None:
        for a, d, t in list(
            zip(cat.col("top_acts", row) or [], cat.col("top_domains", row) or [], cat.col("top_texts", row) or [])
        )[:TOP_TEXTS]:
            top.append({"act": float(a), "domain": d or "", "cls": colors.cls(d), "text": _clip(t or "")})
    shares = sorted(cat.data.domain_shares[row].items(), key=lambda kv: -kv[1]) if row is not None else []
    near_ids, near_cos = served.nearest_features(fid, NEAREST)
    return {
        "fid": fid,
        "colors": colors,
        "row": row,
        "label": cat.label[row] if row is not None else "",
        "verdict": cat.verdict[row] if row is not None else "",
        "concept": cat.concept[row] if row is not None and cat.concept is not None else None,
        "keywords": list(cat.col("keywords", row) or []) if row is not None else [],
        "tfidf": (cat.col("tfidf_label", row) or "") if row is not None else "",
        "facts": [
            ("density", cat.data.density[row] if row is not None else None, "pct"),
            ("label score", cat.score[row] if row is not None else None, "num"),
            ("coherence", cat.col("coherence", row) if row is not None else None, "num"),
            ("main domain", cat.main[row] if row is not None else "", "text"),
            ("fires on", len(rows), "int"),
            ("of texts", served.acts.n_texts, "int"),
        ],
        "grid": score_grid(cat, row) if row is not None else {"rows": [], "cols": [], "cells": {}},
        "top": top,
        "range_texts": range_texts,
        "n_firing": len(rows),
        "hist": plots.histogram([("texts", acts, "s0")], bins=30, xlabel="activation", ylabel="texts")
        if len(acts)
        else None,
        "shares_plot": plots.hbar([d for d, _ in shares], [v for _, v in shares], [colors.cls(d) for d, _ in shares])
        if shares
        else None,
        "families": family_part(cat, fid) if row is not None else [],
        "nearest": [{**_ref(cat, i), "cos": float(c)} for i, c in zip(near_ids, near_cos)],
        "counterparts": counterparts,
        "max_act": float(np.nanmax(acts)) if len(acts) else None,
    }
