"""How a feature's activation mass spreads over the store's domains.

`domain_shares` = summed activation per domain / total activation (train split). Shares are raw
mass, not corrected for domain size, so they answer "where does this feature's output come from".
`domain_specificity` = 1 - H(shares) / log(n_domains): 1 when all mass is in one domain, 0 when it
is spread evenly over all of them. Chosen over "max share rescaled" because it also separates a
feature split over two domains from one spread over eleven. NaN for dead features and for stores
with a single domain, where it has no meaning.
"""

from __future__ import annotations

import json

import numpy as np


def domain_shares(mass: np.ndarray) -> np.ndarray:
    """[d_sae, n_domains] mass -> shares summing to 1 per live row (0 rows stay 0)."""
    total = mass.sum(1, keepdims=True)
    return np.divide(mass, total, out=np.zeros_like(mass, dtype=np.float64), where=total > 0)


def domain_specificity(shares: np.ndarray) -> np.ndarray:
    n_domains = shares.shape[1]
    live = shares.sum(1) > 0
    out = np.full(shares.shape[0], np.nan)
    if n_domains < 2:
        return out
    with np.errstate(divide="ignore", invalid="ignore"):
        entropy = -np.where(shares > 0, shares * np.log(shares), 0.0).sum(1)
    out[live] = np.clip(1.0 - entropy[live] / np.log(n_domains), 0.0, 1.0)
    return out


def main_domain(shares: np.ndarray, domains: list[str]) -> list[str]:
    live = shares.sum(1) > 0
    best = shares.argmax(1)
    return [domains[j] if ok else "" for j, ok in zip(best, live)]


def shares_json(shares: np.ndarray, domains: list[str], digits: int = 4) -> list[str]:
    """One JSON object per feature, domain -> share, zero shares left out (the report's contract:
    features.parquet keeps domain_shares as a JSON string)."""
    out = []
    for row in shares:
        nz = np.flatnonzero(row > 0)
        out.append(json.dumps({domains[j]: round(float(row[j]), digits) for j in nz[np.argsort(-row[nz])]}))
    return out
