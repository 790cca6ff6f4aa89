"""Query parameters read with their bounds: a bad one is a 400 whose one line names the parameter,
what it got and what it takes. Nothing read here is ever used as a path."""

from __future__ import annotations

import math

from starlette.datastructures import QueryParams
from starlette.exceptions import HTTPException

from ..path_checks import some_of
from ..search import whole

MAX_TEXT = 500  # characters of a search query or a label filter


def bad(message: str, status: int = 400) -> HTTPException:
    return HTTPException(status, message)


def text(q: QueryParams, name: str, default: str = "") -> str:
    value = q.get(name, default).strip()
    if len(value) > MAX_TEXT:
        raise bad(f"{name}: {len(value)} characters; give at most {MAX_TEXT}")
    return value


def integer(q: QueryParams, name: str, default: int | None, lo: int, hi: int) -> int | None:
    raw = q.get(name, "").strip()
    if not raw:
        return default
    try:
        value = whole(raw)
    except ValueError:
        raise bad(f"{name}={raw[:40]!r}: not a whole number; give one from {lo} to {hi}") from None
    if not lo <= value <= hi:
        raise bad(f"{name}={value}: out of range; give one from {lo} to {hi}")
    return value


def number(q: QueryParams, name: str, lo: float, hi: float) -> float | None:
    raw = q.get(name, "").strip()
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and lo <= value <= hi):
        raise bad(f"{name}={raw[:40]!r}: give a number from {lo:g} to {hi:g}")
    return value


def choice(q: QueryParams, name: str, options: list[str], default: str = "") -> str:
    value = q.get(name, default)
    if value and value not in options:
        raise bad(f"{name}={value[:60]!r}: not one of {some_of(options, 12)}")
    return value


def feature_id(raw: str, d_sae: int) -> int:
    try:
        value = whole(raw)
    except ValueError:
        raise bad(f"feature {raw[:40]!r}: not a feature id; this run has features 0..{d_sae - 1}") from None
    if not 0 <= value < d_sae:
        raise bad(f"feature {value} does not exist: this run has features 0..{d_sae - 1}", 404)
    return value
