"""The Features page: the run's features filtered and sorted on the server, a page at a time, so
the page stays small whatever d_sae is. Every filter is a query parameter (a filtered list has a
stable URL): verdict, domain (main domain), min_score (label score), min_density / max_density,
family (a family id: its parent and children), q (text in the label, concept or keywords, or
#id), sort, page."""

from __future__ import annotations

import math

import numpy as np
from starlette.datastructures import QueryParams

from ..search import WHOLE
from . import params
from .catalog import Catalog

PER_PAGE = 50
SORTS = {"score": "label score", "density": "density", "id": "feature id"}


def filters(q: QueryParams, cat: Catalog) -> dict:
    return {
        "verdict": params.choice(q, "verdict", cat.verdict_names()),
        "domain": params.choice(q, "domain", cat.domains()),
        "min_score": params.number(q, "min_score", 0.0, 1.0),
        "min_density": params.number(q, "min_density", 0.0, 1.0),
        "max_density": params.number(q, "max_density", 0.0, 1.0),
        "family": params.integer(q, "family", None, 0, max(cat.n_families() - 1, 0)),
        "q": params.text(q, "q"),
        "sort": params.choice(q, "sort", list(SORTS), "score"),
        "page": params.integer(q, "page", 1, 1, 10**9),
    }


def matching_rows(f: dict, cat: Catalog) -> np.ndarray:
    keep = np.ones(cat.n, bool)
    if f["verdict"]:
        keep &= cat.verdict == f["verdict"]
    if f["domain"]:
        keep &= np.array([m == f["domain"] for m in cat.main], bool)
    if f["min_score"] is not None:
        keep &= np.nan_to_num(cat.score, nan=-1.0) >= f["min_score"]
    density = cat.data.density
    if f["min_density"] is not None:
        keep &= np.nan_to_num(density, nan=-1.0) >= f["min_density"]
    if f["max_density"] is not None:
        keep &= np.nan_to_num(density, nan=2.0) <= f["max_density"]
    if f["family"] is not None:
        fam = cat.family(f["family"]) or {"parent": -1, "children": []}
        members = {int(fam["parent"]), *(int(c) for c in fam["children"] or [])}
        keep &= np.isin(cat.data.feature_id, list(members))
    text = f["q"].lower()
    if text.startswith("#") and WHOLE.fullmatch(text[1:]):  # ASCII digits: "#²" passed isdigit, then int() raised
        keep &= cat.data.feature_id == int(text[1:])
    elif text:
        keep &= np.array([text in s for s in cat.search_text], bool)
    rows = np.flatnonzero(keep)
    key = {
        "score": -np.nan_to_num(cat.score, nan=-1.0),
        "density": -np.nan_to_num(density, nan=-1.0),
        "id": cat.data.feature_id.astype(np.float64),
    }[f["sort"]]
    return rows[np.lexsort((cat.data.feature_id[rows], key[rows]))]


def browse(q: QueryParams, cat: Catalog) -> dict:
    f = filters(q, cat)
    rows = matching_rows(f, cat)
    pages = max(1, math.ceil(len(rows) / PER_PAGE))
    page = min(f["page"], pages)
    shown = rows[(page - 1) * PER_PAGE : page * PER_PAGE]
    keywords = cat.data.cols.get("keywords")
    items = [
        {
            "id": int(cat.data.feature_id[r]),
            "label": cat.label[r],
            "verdict": cat.verdict[r],
            "concept": cat.concept[r] if cat.concept is not None else None,
            "score": None if math.isnan(cat.score[r]) else float(cat.score[r]),
            "density": float(cat.data.density[r]),
            "domain": cat.main[r],
            "keywords": ", ".join(list(keywords[r] or [])[:6]) if keywords else "",
            "families": cat.families_of.get(int(cat.data.feature_id[r]), []),
        }
        for r in shown
    ]
    link = {k: v for k, v in q.items() if k != "page"}
    return {
        "filters": f,
        "items": items,
        "total": len(rows),
        "page": page,
        "pages": pages,
        "link": link,
        "verdicts": cat.verdict_names(),
        "domains": cat.domains(),
        "sorts": SORTS,
        "has_concept": cat.concept is not None,
        "n_families": cat.n_families(),
        "notes": cat.data.notes,  # optional files that could not be read, as the report shows them
    }
