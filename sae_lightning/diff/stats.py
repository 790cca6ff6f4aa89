"""Per-feature statistics of "fires in group A" against "fires in group B": pure numpy/scipy.

For each feature a 2x2 table: a = texts of A it fires on, b = texts of A it does not, c and d
the same in B. From it:

- rates a/n_A and c/n_B, and their difference;
- the log-odds ratio log((a+.5)(d+.5) / ((b+.5)(c+.5))) with the Haldane-Anscombe +0.5 (finite
  when a feature never fires in one group, which is the most interesting case) and its Wald
  interval, log-odds ± z·sqrt(Σ 1/(cell+.5));
- a two-sided Fisher exact test (the central version: twice the smaller one-sided hypergeometric
  tail). Fisher, not a two-proportion z-test, because SAE features are sparse: many fire on a
  handful of texts, where the z-test's normal approximation is wrong; the exact test holds at
  any count, and its tails are vectorised over all features in one call;
- Benjamini-Hochberg q-values over every feature tested, so "q < alpha" bounds the expected share
  of false discoveries among the reported features by alpha.
"""

from __future__ import annotations

import numpy as np
from scipy import stats


def log_odds_ratio(
    a: np.ndarray, n_a: int, c: np.ndarray, n_b: int, alpha: float = 0.05
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Haldane-corrected log-odds ratio of firing in A over B, and its (1 - alpha) Wald interval."""
    a, c = np.asarray(a, np.float64) + 0.5, np.asarray(c, np.float64) + 0.5
    b, d = n_a - a + 1.0, n_b - c + 1.0  # (n_a - a_raw) + 0.5
    lor = np.log(a) + np.log(d) - np.log(b) - np.log(c)
    half = stats.norm.ppf(1 - alpha / 2) * np.sqrt(1 / a + 1 / b + 1 / c + 1 / d)
    return lor, lor - half, lor + half


def fisher_two_sided(a: np.ndarray, n_a: int, c: np.ndarray, n_b: int) -> np.ndarray:
    """Central two-sided Fisher exact p-value per feature: 2 · min(P[X ≤ a], P[X ≥ a]), capped at 1,
    with X ~ Hypergeom(total n_a + n_b, fired a + c, drawn n_a)."""
    a, c = np.asarray(a, np.int64), np.asarray(c, np.int64)
    dist = stats.hypergeom(n_a + n_b, a + c, n_a)
    lower, upper = dist.cdf(a), dist.sf(a - 1)
    return np.minimum(1.0, 2.0 * np.minimum(lower, upper))


def benjamini_hochberg(p: np.ndarray) -> np.ndarray:
    """BH q-values (adjusted p-values): q_(i) = min over j ≥ i of p_(j) · m / j, in input order."""
    p = np.asarray(p, np.float64)
    m = p.size
    if m == 0:
        return p.copy()
    order = np.argsort(p, kind="stable")
    scaled = p[order] * m / np.arange(1, m + 1)
    q = np.minimum.accumulate(scaled[::-1])[::-1]
    out = np.empty(m)
    out[order] = np.minimum(q, 1.0)
    return out


def separating(q: np.ndarray, lor: np.ndarray, alpha: float, min_log_odds: float) -> np.ndarray:
    """The features that separate the groups: significant after BH and a log-odds ratio at least
    min_log_odds away from 0 (a tiny but significant shift in a huge corpus is not a difference
    worth naming)."""
    return (np.asarray(q) < alpha) & (np.abs(np.asarray(lor)) >= min_log_odds)
