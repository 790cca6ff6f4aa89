"""The Domains page: two groups of the run's store domains -> sae-diff's table and forest plot
(the same test, table and page pieces: diff/analysis.py, diff/page.py), and the domain x domain
matrix. Firing counts come from the activations kept in memory, so a diff takes a fraction of a
second; results are cached per labelling (labels and verdicts appear in the table).

Groups come from the URL only as names of the store's domains (`a=Mathematics&a=History&b=Arts`):
sae-diff's `domain=<config>` groups, which read files, are not offered here."""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict

import numpy as np
from starlette.datastructures import QueryParams

from ..diff.analysis import DiffResult, DiffSettings, diff_table, feature_info, matrix_from_counts
from ..diff.groups import check_groups, store_group
from ..diff.page import diff_context, matrix_plots
from . import params
from .state import ServedRun

CACHE_SIZE = 64
log = logging.getLogger(__name__)


class DomainDiffs:
    def __init__(self, served: ServedRun) -> None:
        self.served = served
        self.settings = DiffSettings()  # sae-diff's defaults (conf/diff.yaml)
        self._cache: OrderedDict = OrderedDict()
        self._computing: dict = {}  # key -> lock held while it is computed (the same diff asked twice: once)
        self._lock = threading.Lock()
        self.matrix_error = ""

    def _cached(self, key, compute):
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
            computing = self._computing.setdefault(key, threading.Lock())
        with computing:
            with self._lock:
                if key in self._cache:
                    return self._cache[key]
            value = compute()
            with self._lock:
                self._cache[key] = value
                self._computing.pop(key, None)
                while len(self._cache) > CACHE_SIZE:
                    self._cache.popitem(last=False)
        return value

    def groups(self, q: QueryParams) -> tuple[list[str], list[str]]:
        # an empty a= is no group: diffed, it failed in sae-diff's words (comma-separated names,
        # domain=<config>), which this page refuses
        a, b = [d for d in q.getlist("a") if d], [d for d in q.getlist("b") if d]
        for name, side in (("a", a), ("b", b)):
            for d in side:
                params.choice(QueryParams({name: d}), name, self.served.store_domains)
        return sorted(set(a)), sorted(set(b))

    def diff(self, a: list[str], b: list[str]) -> dict:
        lab = self.served.labelled()
        return self._cached(("diff", lab.stamp, tuple(a), tuple(b)), lambda: self._diff(a, b))

    def _diff(self, a_names: list[str], b_names: list[str]) -> dict:
        served, s = self.served, self.settings
        store = served.labelled().run.store
        a, b = store_group(store, a_names), store_group(store, b_names)  # one-line errors for bad names
        check_groups(a, b, s.min_texts)
        masks = [np.isin(served.domain_of_row, names) for names in (a_names, b_names)]
        counts = [served.acts.fire_counts(m) for m in masks]
        n_a, n_b = int(masks[0].sum()), int(masks[1].sum())
        info = feature_info(served.labelled().reader, served.d_sae)
        table = diff_table(counts[0], n_a, counts[1], n_b, a.name, b.name, s, info)
        res = DiffResult(served.path, a.name, b.name, n_a, n_b, table, s, store.model_name)
        shown = set(res.top(a.name).index) | set(res.top(b.name).index)
        texts = store.metadata()["text"].to_numpy()
        for col, mask in (("examples_a", masks[0]), ("examples_b", masks[1])):
            table[col] = [
                [str(texts[r]) for r in served.acts.top_rows(int(f), mask, s.examples)] if i in shown else []
                for i, f in zip(table.index, table["feature_id"])
            ]
        return diff_context(res)

    def matrix(self) -> dict | None:
        domains = self.served.store_domains
        if len(domains) < 2:
            return None
        return self._cached(("matrix",), self._matrix)

    def warm(self) -> None:
        """The matrix, computed at start-up (on the server's diff thread); a failure is logged and
        shown on the Domains page instead of the matrix."""
        try:
            self.matrix()
        except Exception as err:  # noqa: BLE001 (a background task: nobody else would see it)
            log.exception("the domain matrix of %s failed", self.served.path)
            self.matrix_error = f"the matrix could not be computed: {type(err).__name__}: {err}"

    def matrix_if_ready(self) -> dict | str | None:
        """The matrix if computed, "computing" while the server's start-up is still at it."""
        with self._lock:
            if ("matrix",) in self._cache:
                return self._cache[("matrix",)]
        if len(self.served.store_domains) < 2:
            return None
        return self.matrix_error or "computing"

    def _matrix(self) -> dict:
        served = self.served
        masks = [served.domain_of_row == d for d in served.store_domains]
        res = matrix_from_counts(
            served.path,
            served.store_domains,
            [served.acts.fire_counts(m) for m in masks],
            [int(m.sum()) for m in masks],
            self.settings,
        )
        return matrix_plots(res)
