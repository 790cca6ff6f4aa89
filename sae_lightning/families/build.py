"""Feature families (O'Neill et al. 2024; Yb1ku/SAEs-for-Sentence-BERT): a general feature and the
more specific features that fire with it, read off the maximum spanning tree of the co-activation
graph over the training split.

    from sae_lightning.families.build import build_families
    build_families("outputs/train/runs/wiki_all/2025-01-01_12-00-00")   # -> the current labelling's families.parquet

1. Co-activation: C = AᵀA with A the binary firing matrix of the train rows, counted by the
   post-training scan (scan/stream.py, scan/coactivation.py) batch by batch in bounded memory; `label_run_dir`
   hands the families step that scan, the loaded SAE and store, the labels just made and the
   top texts' n-gram counts, so nothing is read or computed twice.
2. Edge weight: the overlap coefficient C_ij / min(C_ii, C_jj), i.e. P(both fire | the rarer one
   fires). A child feature is much rarer than its parent and fires almost only with it, which
   gives a weight near 1; Jaccard would divide by the parent's large count and hide exactly these
   pairs. Pairs seen together fewer than `min_cooccur` times are no edge (one joint firing of two
   rare features would otherwise weigh 1). Dense features (firing on more than `max_density` of
   the rows) are left out: they co-fire with everything by chance.
3. Maximum spanning tree (a forest where the graph is not connected): scipy's minimum spanning
   tree of the negated weights. It keeps, for every feature, its strongest ties that do not
   close a cycle, so each feature hangs from the feature it most depends on.
4. A family is a parent with its children: tree neighbours that are rarer than it (fewer
   firings, ties to the higher id) and tied to it with weight >= `min_weight`; a parent needs
   `min_children`. A feature with several more frequent tree neighbours is the child of the one
   it is tied to most strongly, so it is in at most one family as a child; it can still be the
   parent of another (families nest the way the tree does).
5. Each family is named by KeyBERT over its members' top texts (naming.py).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix, csr_matrix, triu
from scipy.sparse.csgraph import minimum_spanning_tree

from ..data.store import EmbeddingStore
from ..labels.naming.candidates import TrainCounts
from ..run_dir import Labeling, RunDir
from ..run_reader import RunReader
from ..run_schema import FAMILY_SCHEMA  # noqa: F401 (the contract, re-exported)
from ..scan.stream import ScanResult, scan_store
from ..schemas.families import FamiliesConfig
from ..schemas.labeling import LabelingConfig
from .naming import family_label, name_families

log = logging.getLogger(__name__)

FAMILIES_FILE = Labeling.FAMILIES


@dataclass
class CoActivation:
    counts: csr_matrix  # [d_sae, d_sae] rows where both fired; the diagonal is each one's firings
    n_rows: int
    top_rows: np.ndarray  # [d_sae, m] store rows of each feature's top activations (-1 padding)

    @property
    def fires(self) -> np.ndarray:
        return self.counts.diagonal().astype(np.int64)


def from_scan(scan: ScanResult, m: int = 5) -> CoActivation:
    """The families' view of the post-training scan: its pair counts, and each feature's first m top rows."""
    if scan.coactivation is None:
        raise ValueError("this scan counted no feature pairs: scan_store(..., min_cooccur=<int>) counts them")
    return CoActivation(scan.coactivation, scan.n_train, scan.top.rows[:, :m])


def coactivation(
    sae,
    store: EmbeddingStore,
    rows: np.ndarray,
    m: int = 5,
    batch_size: int = 4096,
    device: str | None = None,
    min_cooccur: int = 1,
) -> CoActivation:
    """Scan the rows for the families alone (every pair seen at least min_cooccur times)."""
    scan = scan_store(sae, store, rows, np.zeros(0, np.int64), m, batch_size, device, min_cooccur=min_cooccur)
    return from_scan(scan, m)


def coactivation_weights(co: CoActivation, min_cooccur: int, max_density: float) -> csr_matrix:
    """Symmetric [d_sae, d_sae] overlap-coefficient weights, zero diagonal (see module doc, 2.)."""
    fires = co.fires
    C = triu(co.counts, k=1).tocoo()  # each pair once
    usable = fires <= max_density * co.n_rows
    keep = (C.data >= min_cooccur) & usable[C.row] & usable[C.col]
    i, j, c = C.row[keep], C.col[keep], C.data[keep]
    w = c / np.minimum(fires[i], fires[j])
    W = coo_matrix((w, (i, j)), shape=C.shape)
    return (W + W.T).tocsr()


def max_spanning_tree(W: csr_matrix) -> csr_matrix:
    """Symmetric adjacency of the maximum spanning forest of W, with W's (positive) weights."""
    T = minimum_spanning_tree(-triu(W, k=1)).tocoo()  # every weight > 0, so every edge stays nonzero
    T = coo_matrix((-T.data, (T.row, T.col)), shape=W.shape)
    return (T + T.T).tocsr()


def extract_families(
    T: csr_matrix, fires: np.ndarray, min_weight: float, min_children: int
) -> list[tuple[int, list[int], list[float]]]:
    """(parent, children, their tree weights), strongest tie first, for every parent with at least
    `min_children`. A feature hangs from its strongest tree neighbour among the more frequent ones
    (weight >= min_weight), so each feature is a child in at most one family."""
    T = T.tocoo()
    # orient every tree edge from the more frequent feature to the rarer one (ties: lower id first)
    down = (fires[T.row] > fires[T.col]) | ((fires[T.row] == fires[T.col]) & (T.row < T.col))
    parent, child, w = T.row[down], T.col[down], T.data[down]
    keep = w >= min_weight
    parent, child, w = parent[keep], child[keep], w[keep]
    if not len(child):  # nothing co-fires strongly enough (tiny, duplicated or very sparse data)
        return []
    best = np.lexsort((-w, child))  # per child, its strongest parent first
    first = np.r_[True, child[best][1:] != child[best][:-1]]
    parent, child, w = parent[best][first], child[best][first], w[best][first]
    out = []
    for p in np.unique(parent):
        mine = np.flatnonzero(parent == p)
        if len(mine) >= min_children:
            order = mine[np.argsort(-w[mine], kind="stable")]
            out.append((int(p), child[order].tolist(), w[order].tolist()))
    return out


def build_families(
    run_dir: str | Path,
    settings: FamiliesConfig | None = None,
    *,
    labeling: LabelingConfig | None = None,
    batch_size: int = 4096,
    device: str | None = None,
    into: Labeling | None = None,
) -> pd.DataFrame:
    """Find the feature families of a finished run on their own (loads the run and scans its train
    split; `label_run_dir` instead hands its scan to families_from_scan) and write them into the
    labelling `into`, named with its labels (default: the run's current labelling, whose top-level
    copy is refreshed; for an unlabelled run, a new labelling that holds only them)."""
    settings = settings if settings is not None else FamiliesConfig()
    run = RunDir(run_dir)
    target = into or run.labeling()
    if target is None:
        with run.new_labeling() as new:
            df = build_families(run_dir, settings, labeling=labeling, batch_size=batch_size, device=device, into=new)
            new.write_labels({}, asdict(settings), {})
        return df
    loaded = RunReader(run_dir).trained(device)
    scan = scan_store(
        loaded.sae,
        loaded.store,
        loaded.train_idx,
        np.zeros(0, np.int64),
        settings.texts_per_member,
        batch_size,
        device,
        min_cooccur=settings.min_cooccur,
    )
    df = families_from_scan(
        scan,
        loaded.store,
        loaded.sae,
        _feature_labels(target, loaded.sae.cfg.d_sae),
        labeling=labeling,
        settings=settings,
    )
    target.write_families(df)
    if into is None:
        run.publish()
    return df


def families_from_scan(
    scan: ScanResult,
    store: EmbeddingStore,
    sae,
    feature_labels: tuple[list[str], list[str]],
    counts: TrainCounts | None = None,
    labeling: LabelingConfig | None = None,
    settings: FamiliesConfig | None = None,
) -> pd.DataFrame:
    """The families table from the scan. feature_labels: (label, verdict) per feature ("" unknown);
    counts: the labelling's n-gram counts of the top texts (None: the families' texts are counted
    here). Families are ordered by size, then by parent density; `family_id` is that rank."""
    s = settings if settings is not None else FamiliesConfig()
    if scan.min_cooccur > s.min_cooccur:
        raise ValueError(
            f"the scan kept pairs seen >= {scan.min_cooccur} times; families need min_cooccur={s.min_cooccur}"
        )
    co = from_scan(scan, s.texts_per_member)
    T = max_spanning_tree(coactivation_weights(co, s.min_cooccur, s.max_density))
    fams = extract_families(T, co.fires, s.min_weight, s.min_children)
    fams.sort(key=lambda f: (-len(f[1]), -co.fires[f[0]], f[0]))
    members = [[p, *children] for p, children, _ in fams]
    keywords = name_families(members, co.top_rows, store, labeling or LabelingConfig(), sae, counts)
    parent_labels, verdicts = feature_labels
    df = pd.DataFrame(
        {
            "family_id": np.arange(len(fams), dtype=np.int64),
            "parent": [p for p, _, _ in fams],
            "children": [c for _, c, _ in fams],
            "label": [family_label(k, [verdicts[f] for f in fam]) for k, fam in zip(keywords, members)],
            "keywords": keywords,
            "size": [1 + len(c) for _, c, _ in fams],
            "child_weights": [w for _, _, w in fams],
            "mean_weight": [float(np.mean(w)) for _, _, w in fams],
            "parent_density": [co.fires[p] / max(co.n_rows, 1) for p, _, _ in fams],
            "parent_label": [parent_labels[p] for p, _, _ in fams],
        }
    )
    if not fams:
        log.warning(
            "no feature families: no parent has %d children tied to it with weight >= %s "
            "(features that fire together at least %d times, each on at most %s of %d rows); "
            "families.parquet is empty",
            s.min_children,
            s.min_weight,
            s.min_cooccur,
            s.max_density,
            co.n_rows,
        )
    else:
        log.info("%d feature families (%d features in them)", len(df), int(df["size"].sum()))
    return df


def feature_labels(features: pd.DataFrame, d_sae: int) -> tuple[list[str], list[str]]:
    """Each feature's label and verdict from a features table ("" where unknown)."""
    labels, verdicts = [""] * d_sae, [""] * d_sae
    verdict = features["verdict"] if "verdict" in features else [""] * len(features)
    for f, lab, v in zip(features["feature_id"], features["label"], verdict):
        if 0 <= f < d_sae and isinstance(lab, str):
            labels[f], verdicts[f] = lab, str(v)
    return labels, verdicts


def _feature_labels(labeling: Labeling, d_sae: int) -> tuple[list[str], list[str]]:
    """feature_labels of the labelling's features.parquet (all "" when it has none yet)."""
    if not labeling.has_features():
        return [""] * d_sae, [""] * d_sae
    return feature_labels(labeling.read_features(), d_sae)
