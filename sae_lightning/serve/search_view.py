"""The Search page: a sentence -> the features it turns on (labels, verdicts) and the store's
nearest texts; clamps (`clamp=FEATURE=VALUE`, as `sae-search --clamp`, repeatable) steer the
query and the page shows how the nearest texts move. One embedding of the query per request; the
model and the store stay loaded, so an answer takes tens of milliseconds."""

from __future__ import annotations

import math
import time

import numpy as np
from starlette.datastructures import QueryParams

from ..search import steer, strongest
from . import params
from .state import ServedRun

TOP_FEATURES = 10
NEAREST = 10
MAX_CLAMPS = 32
SLIDER_TOP = 3.0  # a slider reaches this many times the feature's top train activation


def clamps_of(q: QueryParams, served: ServedRun) -> dict[int, float]:
    items = q.getlist("clamp")
    if len(items) > MAX_CLAMPS:
        raise params.bad(f"clamp: {len(items)} given; give at most {MAX_CLAMPS}")
    return served.labelled().run.parse_clamps(items) if items else {}


def _feature_row(cat, fid: int, act: float) -> dict:
    row = cat.row_of.get(fid)
    top = float(cat.max_act[row]) if row is not None and math.isfinite(cat.max_act[row]) else max(act, 1.0)
    return {
        "id": fid,
        "act": act,
        "label": cat.label[row] if row is not None else "",
        "verdict": cat.verdict[row] if row is not None else "",
        "concept": cat.concept[row] if row is not None and cat.concept is not None else None,
        "top_act": top,
        "slider_max": round(SLIDER_TOP * max(top, act), 4),
    }


def nearest(served: ServedRun, x: np.ndarray, clamp: dict[int, float]) -> dict:
    """The nearest texts of the query embedding x, and of x steered by `clamp` (each steered text
    marked with its rank before, or as new)."""
    base = served.index.nearest(x, NEAREST)
    out = {"base": base.to_dict("records"), "steered": None}
    if clamp:
        moved = served.index.nearest(steer(served.labelled().run.sae, x, clamp), NEAREST)
        before = {int(r): i + 1 for i, r in enumerate(base["row"])}
        out["steered"] = [{**r, "was": before.get(int(r["row"]))} for r in moved.to_dict("records")]
    return out


def search(q: QueryParams, served: ServedRun) -> dict:
    query = params.text(q, "q")
    clamp = clamps_of(q, served)
    if not query:
        return {"q": "", "clamp": clamp, "features": [], "results": None, "ms": None}
    t0 = time.perf_counter()
    lab = served.labelled()
    x = served.embed(query)
    hits = strongest(lab.run.encode_embeddings(x)[0], TOP_FEATURES, verdicts=lab.run.verdicts)
    feats = [_feature_row(lab.catalog, int(f), float(a)) for f, a in zip(hits["feature_id"], hits["activation"])]
    firing = set(int(f) for f in hits["feature_id"])
    feats += [
        _feature_row(lab.catalog, fid, 0.0) for fid in clamp if fid not in firing
    ]  # clamped, not firing: a slider too
    for f in feats:
        f["value"] = float(clamp.get(f["id"], f["act"]))
        f["slider_max"] = max(f["slider_max"], round(f["value"], 4))
    results = nearest(served, x, clamp)
    return {
        "q": query,
        "clamp": clamp,
        "features": feats,
        "results": results,
        "ms": round(1000 * (time.perf_counter() - t0)),
    }


def steered(q: QueryParams, served: ServedRun) -> dict:
    """What a slider reloads: the nearest texts of q, before and after its clamps."""
    query = params.text(q, "q")
    if not query:
        raise params.bad("q: give a sentence to search for")
    return nearest(served, served.embed(query), clamps_of(q, served))
