"""What the server holds per run: the SAE, store and model loaded once (api.Run), every text's
activations, the decoder's unit rows, and the current labelling as a Catalog.

A run relabelled while the server runs (sae-label switches labeling.json to a new labelling in one
rename) is picked up: every request looks at its files' stamps, and a changed stamp rebuilds the
labelling's views before the page is drawn. The SAE and the store do not change under a finished
run, so the activations stay. Nothing here writes into the run.
"""

from __future__ import annotations

import logging
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..api import Run
from ..compare.load import load_run_sae
from ..errors import UserError
from ..path_checks import os_reason
from ..run_dir import Labeling
from ..run_reader import RunReader
from .activations import StoreActivations, store_activations
from .catalog import Catalog, load_catalog
from .settings import ServeSettings
from .text_index import TextIndex

log = logging.getLogger(__name__)


class RunUnservable(UserError):
    """A served run that cannot be read as it is now (made unreadable, or relabelled with a damaged
    labelling, while the server runs): its pages answer `status` with the reason and the fix, the
    index marks it `note`, and the other runs serve on. It serves again once it is readable."""

    status, note = 503, "cannot be read now (its pages say why)"


class RunGone(RunUnservable):
    """A served run's folder is no longer there (moved or deleted while the server runs)."""

    status, note = 410, "gone (moved or deleted after sae-serve started)"


@dataclass
class Labelled:
    """A labelling's views, replaced whole on a relabel (readers keep the one they took)."""

    stamp: tuple
    run: Run  # labels, verdicts and scores of top_features come from the labelling too
    catalog: Catalog
    labeling_id: str
    reader: RunReader  # the run's files as this labelling read them (a relabel shares its SAE and store)


class ServedRun:
    def __init__(self, name: str, path: Path, settings: ServeSettings) -> None:
        self.name, self.path = name, path
        reader = RunReader(path)  # one reader: the decoder, the API's Run and the catalog share its files
        if not reader.info.get("has_texts", True):  # run.json first: a folder that is no run is named so
            # it is never labelled (sae-label refuses it), so "label it first" would send the user in a circle
            raise UserError(
                f"{path} was trained on embeddings without texts (domain=npy without domain.metadata): "
                "sae-serve shows features by their texts and searches with a sentence; serve a run trained on texts"
            )
        self.decoder = load_run_sae(reader)  # unit decoder rows and live flags (sae-compare's loader)
        self.decoder.name = name
        self._lock, self._reload = threading.Lock(), threading.Lock()
        self._failed: tuple[tuple, RunUnservable] | None = None  # a reload that failed, by its stamp
        self._labelled = self._load(reader)
        run = self._labelled.run
        self.acts: StoreActivations = store_activations(run.sae, run.store)
        self.domain_of_row = run.store.metadata()["domain"].astype(str).to_numpy()
        self.store_domains = sorted(set(self.domain_of_row.tolist()))
        self.index = TextIndex(run.store, settings.index_max_mib)
        self._embedded: OrderedDict[str, np.ndarray] = OrderedDict()
        self._embed_cache = settings.embed_cache
        run.embed("warm-up")  # the model loads here, once, not in the first search

    def embed(self, text: str) -> np.ndarray:
        """The sentence's embedding by the run's model; the last `embed_cache` sentences are kept,
        since every slider move of the Search page asks for the same sentence again."""
        with self._lock:
            if text in self._embedded:
                self._embedded.move_to_end(text)
                return self._embedded[text]
        x = self.labelled().run.embed(text)
        with self._lock:
            self._embedded[text] = x
            while len(self._embedded) > self._embed_cache:
                self._embedded.popitem(last=False)
        return x

    def _stamp(self) -> tuple:
        """What a relabel changes (labeling.json switches with current/), and so does a file of the
        labelling replaced or repaired: each file's time, size and inode. One line when the run was
        made unreadable while served (was a 500 with a PermissionError traceback on every page)."""
        try:
            return tuple(
                _stat(self.path / name)
                for name in (Labeling.POINTER, Labeling.FEATURES, Labeling.FAMILIES, Labeling.LABELS)
            )
        except OSError as err:
            raise RunUnservable(
                f"run {self.name!r} ({self.path}) cannot be read now ({os_reason(err)}); make it readable "
                "to sae-serve's user again, or restart sae-serve without it"
            ) from None

    def _load(self, reader: RunReader) -> Labelled:
        stamp = self._stamp()
        run = Run.load(reader)
        if run.features is None:
            raise UserError(f"{self.path} is not labelled; label it first with `sae-label run_dir={self.path}`")
        return Labelled(stamp, run, load_catalog(reader), run.labeling.id if run.labeling else "", reader)

    def labelled(self) -> Labelled:
        """The current labelling's views; rebuilt here when the run was relabelled since."""
        current = self._labelled
        if self._stamp() == current.stamp:
            return current
        if not self.path.is_dir():  # not a relabel: reloading it would fail as 'not a run dir' on every request
            raise RunGone(
                f"run {self.name!r} ({self.path}) was moved or deleted after sae-serve started; "
                "put it back, or restart sae-serve without it"
            )
        with self._reload:  # one rebuild however many requests notice it together
            stamp = self._stamp()
            if stamp == self._labelled.stamp:
                return self._labelled
            if self._failed and self._failed[0] == stamp:  # read once, not again on every request
                raise self._failed[1]
            log.warning("%s was relabelled: reading its new labelling", self.path)
            try:
                self._labelled = self._load(self._labelled.reader.relabelled())
            except (UserError, OSError) as err:  # its pages said "error 400", the index's too
                failed = RunUnservable(f"run {self.name!r} cannot be served as it is now: {err}")
                log.error("%s", failed)
                self._failed = (stamp, failed)
                raise failed from None
            return self._labelled

    @property
    def d_sae(self) -> int:
        return self.decoder.d_sae

    def nearest_features(self, feature: int, n: int) -> tuple[np.ndarray, np.ndarray]:
        """(ids, cosines) of the n live features whose decoder rows point closest to this one's."""
        W = self.decoder.W_dec
        cos = W @ W[feature]
        cos[feature] = -np.inf
        cos[~self.decoder.live] = -np.inf
        ids = np.argsort(-cos, kind="stable")[:n]
        ids = ids[np.isfinite(cos[ids])]
        return ids, cos[ids]


def _stat(path: Path) -> tuple:
    st = path.stat() if path.is_file() else None
    return (st.st_mtime_ns, st.st_size, st.st_ino) if st else ()


def run_names(paths: list[Path]) -> list[str]:
    """A short URL-safe name per run: its folder name, made unique with its parent's when needed."""

    def clean(text: str) -> str:
        return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.") or "run"

    names = [clean(p.name) for p in paths]
    names = [clean(f"{p.parent.name}-{p.name}") if names.count(n) > 1 else n for p, n in zip(paths, names)]
    return [n if names.count(n) == 1 else f"{n}-{i}" for i, n in enumerate(names)]
