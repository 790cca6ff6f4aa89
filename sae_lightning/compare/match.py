"""Feature matching between SAEs by decoder direction, and what it says about each feature.

Two features of two SAEs "are the same" when their decoder rows (unit vectors in the shared
embedding space) point the same way. Per pair of runs we take the one-to-one assignment that
maximises the summed cosine (Hungarian, `linear_sum_assignment` on -cos): unlike "each feature's
nearest row", it cannot let many features of one run claim the same feature of the other. Only
live features take part; a dead feature's row is its random init and would match noise.

Whether a feature is *present* in another run is a different question, answered by its best-match
cosine (its nearest live row there, many-to-one allowed): an SAE often learns one direction twice
(or splits it), and one-to-one matching can pair only one of the copies. Classes and the overlap
heatmap use presence; the pairs table uses the assignment.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

CLASSES = ("universal", "shared", "partial", "specific", "dead")


@dataclass
class PairMatch:
    """The assignment between runs a and b (indices into the compared runs)."""

    a: int
    b: int
    rows: np.ndarray  # [n] feature ids of run a
    cols: np.ndarray  # [n] their partners in run b
    cos: np.ndarray  # [n] decoder cosine of each assigned pair
    best_a: np.ndarray  # [d_sae of a] best cosine of each a feature over all live b features (NaN: dead)
    best_b: np.ndarray  # [d_sae of b] the same from b's side
    near_a: np.ndarray  # [d_sae of a] that nearest b feature (-1: dead)
    near_b: np.ndarray  # [d_sae of b] the nearest a feature of each b feature

    def side(self, run: int) -> tuple[np.ndarray, np.ndarray]:
        """(best-match cosine, nearest feature) of each feature of `run` (one of a, b)."""
        return (self.best_a, self.near_a) if run == self.a else (self.best_b, self.near_b)

    def partner_cos(self, side: int, d_sae: int) -> tuple[np.ndarray, np.ndarray]:
        """(partner id or -1, its cosine or NaN) per feature of run a (side 0) or b (side 1)."""
        partner, cos = np.full(d_sae, -1, np.int64), np.full(d_sae, np.nan)
        mine, theirs = (self.rows, self.cols) if side == 0 else (self.cols, self.rows)
        partner[mine], cos[mine] = theirs, self.cos
        return partner, cos


def match_pair(a: int, b: int, W_a: np.ndarray, W_b: np.ndarray, live_a: np.ndarray, live_b: np.ndarray) -> PairMatch:
    ia, ib = np.flatnonzero(live_a), np.flatnonzero(live_b)
    best_a, best_b = np.full(len(W_a), np.nan), np.full(len(W_b), np.nan)
    near_a, near_b = np.full(len(W_a), -1, np.int64), np.full(len(W_b), -1, np.int64)
    if not len(ia) or not len(ib):
        empty = np.zeros(0, np.int64)
        return PairMatch(a, b, empty, empty, np.zeros(0), best_a, best_b, near_a, near_b)
    cos = W_a[ia] @ W_b[ib].T  # [live_a, live_b]; 3072 x 3072 is 38 MB and ~2 s of assignment
    r, c = linear_sum_assignment(-cos)
    best_a[ia], best_b[ib] = cos.max(1), cos.max(0)
    near_a[ia], near_b[ib] = ib[cos.argmax(1)], ia[cos.argmax(0)]
    return PairMatch(a, b, ia[r], ib[c], cos[r, c].astype(np.float64), best_a, best_b, near_a, near_b)


def classify(n_matched: np.ndarray, live: np.ndarray, n_other: int, shared_fraction: float) -> np.ndarray:
    """Each feature by the number of other runs it is present in (best-match cosine >= threshold):
    universal  all of them;  shared  at least `shared_fraction` of them ("most");
    partial    at least one, fewer than that;  specific  none: it belongs to its own domain."""
    need = max(1, math.ceil(shared_fraction * n_other - 1e-9))
    out = np.full(len(live), "specific", dtype=object)
    out[(n_matched >= 1)] = "partial"
    out[n_matched >= need] = "shared"
    out[n_matched >= n_other] = "universal"
    out[~live] = "dead"
    return out


def feature_groups(d_saes: list[int], pairs: list[PairMatch], threshold: float) -> np.ndarray:
    """Group id per (run, feature), concatenated run by run: connected components of the graph
    whose edges join each feature to its nearest feature in every other run, where their cosine
    is at or above the threshold. A group is "the same feature" in every run it reaches (copies of
    it within one run included); ids run 0, 1, ... from the largest group, -1 for no group."""
    offsets = np.concatenate([[0], np.cumsum(d_saes)])
    src, dst = [], []
    for p in pairs:
        for run, other in ((p.a, p.b), (p.b, p.a)):
            best, near = p.side(run)
            keep = np.flatnonzero(best >= threshold)
            src.append(offsets[run] + keep)
            dst.append(offsets[other] + near[keep])
    n = int(offsets[-1])
    src_a = np.concatenate(src) if src else np.zeros(0, np.int64)
    dst_a = np.concatenate(dst) if dst else np.zeros(0, np.int64)
    graph = coo_matrix((np.ones(len(src_a)), (src_a, dst_a)), shape=(n, n))
    _, comp = connected_components(graph, directed=False)
    sizes = np.bincount(comp)
    order = np.argsort(-sizes, kind="stable")  # largest group first, ties by first member
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    return np.where(sizes[comp] >= 2, rank[comp], -1)
