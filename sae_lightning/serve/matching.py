"""A feature's counterpart in the other runs of a multi-run server, by sae-compare's matching:
the one-to-one assignment of decoder rows between two runs, and each feature's best match
(compare/match.py). A pair of runs is matched on first use and kept; runs that cannot be compared
(different embedding models or widths) say so instead."""

from __future__ import annotations

import threading

import numpy as np

from ..compare import DEFAULT_THRESHOLD
from ..compare.load import check_comparable
from ..compare.match import PairMatch, match_pair
from ..errors import UserError
from .state import ServedRun


class Matcher:
    def __init__(self, runs: list[ServedRun]) -> None:
        self.runs = runs
        self._pairs: dict[tuple[int, int], PairMatch] = {}
        self._lock = threading.Lock()
        self.threshold = DEFAULT_THRESHOLD

    def _pair(self, a: int, b: int) -> PairMatch:
        key = (min(a, b), max(a, b))
        with self._lock:
            if key not in self._pairs:
                ra, rb = self.runs[key[0]].decoder, self.runs[key[1]].decoder
                self._pairs[key] = match_pair(key[0], key[1], ra.W_dec, rb.W_dec, ra.live, rb.live)
            return self._pairs[key]

    def warm(self) -> None:
        """Match every comparable pair of runs now (a few seconds each at 3k features)."""
        for a in range(len(self.runs)):
            for b in range(a + 1, len(self.runs)):
                try:
                    check_comparable([self.runs[a].decoder, self.runs[b].decoder])
                except UserError:
                    continue  # a Feature page says why
                self._pair(a, b)

    def counterparts(self, run: int, feature: int) -> list[dict]:
        """Per other run: its assigned partner and the best-matching feature, with their cosines."""
        out = []
        for other, served in enumerate(self.runs):
            if other == run:
                continue
            try:
                check_comparable([self.runs[run].decoder, served.decoder])
            except UserError as err:
                out.append({"run": served.name, "note": str(err)})
                continue
            pair = self._pair(run, other)
            partner, cos = pair.partner_cos(0 if pair.a == run else 1, self.runs[run].d_sae)
            best, near = pair.side(run)
            out.append(
                {
                    "run": served.name,
                    "note": "",
                    "partner": int(partner[feature]),
                    "partner_cos": float(cos[feature]),
                    "best": int(near[feature]),
                    "best_cos": float(best[feature]),
                    "present": bool(np.nan_to_num(best[feature]) >= self.threshold),
                }
            )
        return out
