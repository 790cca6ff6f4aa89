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
  any count. Its tails are sums of exact log-probabilities (log-binomials from `gammaln`), over
  blocks of features at once: importing scipy.stats for its hypergeometric distribution took
  ~0.5 s of a ~5 s sae-diff (benchmarks/RESULTS.md, "Seventh round"), scipy.special ~0.1 s;
- Benjamini-Hochberg q-values over every feature tested, so "q < alpha" bounds the expected share
  of false discoveries among the reported features by alpha.
"""

from __future__ import annotations

from statistics import NormalDist

import numpy as np
from scipy.special import gammaln, logsumexp

# Cells of one [features, support] grid of log-probabilities (8 bytes each, a few grids alive at
# once): features are taken in blocks that fit, so a dense feature over large groups stays in ~100 MB.
TAIL_CELLS = 1 << 21


def log_odds_ratio(
    a: np.ndarray, n_a: int, c: np.ndarray, n_b: int, alpha: float = 0.05
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Haldane-corrected log-odds ratio of firing in A over B, and its (1 - alpha) Wald interval."""
    a, c = np.asarray(a, np.float64) + 0.5, np.asarray(c, np.float64) + 0.5
    b, d = n_a - a + 1.0, n_b - c + 1.0  # (n_a - a_raw) + 0.5
    lor = np.log(a) + np.log(d) - np.log(b) - np.log(c)
    half = NormalDist().inv_cdf(1 - alpha / 2) * np.sqrt(1 / a + 1 / b + 1 / c + 1 / d)
    return lor, lor - half, lor + half


def fisher_two_sided(a: np.ndarray, n_a: int, c: np.ndarray, n_b: int) -> np.ndarray:
    """Central two-sided Fisher exact p-value per feature: 2 · min(P[X ≤ a], P[X ≥ a]), capped at 1,
    with X ~ Hypergeom(total n_a + n_b, fired a + c, drawn n_a)."""
    a, c = np.asarray(a, np.int64), np.asarray(c, np.int64)
    lower, upper = hypergeom_log_tails(a, n_a + n_b, a + c, n_a)
    return np.minimum(1.0, 2.0 * np.exp(np.minimum(lower, upper)))


def _log_choose(n: np.ndarray, k: np.ndarray) -> np.ndarray:
    return gammaln(n + 1.0) - gammaln(k + 1.0) - gammaln(n - k + 1.0)


def hypergeom_log_tails(x: np.ndarray, total: int, good: np.ndarray, drawn: int) -> tuple[np.ndarray, np.ndarray]:
    """log P[X <= x] and log P[X >= x] per entry, X ~ Hypergeom(total, good, drawn): the log-sum of
    the exact probabilities of the support's values on each side, so a tail of 1e-100 keeps its digits."""
    x, good = np.asarray(x, np.int64), np.asarray(good, np.int64)
    lower, upper = np.empty(len(x)), np.empty(len(x))
    lo = np.maximum(0, drawn + good - total)  # the support: lo..hi
    hi = np.minimum(drawn, good)
    order = np.argsort(hi - lo, kind="stable")  # features of like support width share a grid
    width = (hi - lo + 1)[order]
    s = 0
    while s < len(x):
        end = s + 1  # the block grows while its widest (its last) grid still fits in TAIL_CELLS
        while end < len(x) and (end - s + 1) * int(width[end]) <= TAIL_CELLS:
            end += 1
        sl, s = order[s:end], end
        values = lo[sl, None] + np.arange(int(width[end - 1]))  # [block, widest support]
        inside = values <= hi[sl, None]
        k = np.where(inside, values, lo[sl, None]).astype(np.float64)
        g = good[sl, None].astype(np.float64)
        logp = _log_choose(g, k) + _log_choose(total - g, drawn - k) - _log_choose(float(total), float(drawn))
        logp = np.where(inside, logp, -np.inf)
        lower[sl] = logsumexp(np.where(values <= x[sl, None], logp, -np.inf), axis=1)
        upper[sl] = logsumexp(np.where(values >= x[sl, None], logp, -np.inf), axis=1)
    return np.minimum(lower, 0.0), np.minimum(upper, 0.0)


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
