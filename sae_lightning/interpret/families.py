"""Feature families (O'Neill et al. 2024; Yb1ku/SAEs-for-Sentence-BERT): a general feature and the
more specific features that fire with it, read off the maximum spanning tree of the co-activation
graph over the training split.

    from sae_lightning.interpret.families import build_families
    build_families("outputs/train/runs/wiki_all/2025-01-01_12-00-00")   # -> the current labelling's families.parquet

1. Co-activation (one streamed pass): C = AᵀA with A the binary firing matrix of a batch, built
   sparse (a TopK SAE fires k of d_sae latents per row, so a batch adds at most B·k² pairs).
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
5. Each family is named by KeyBERT over its members' top texts (families_naming.py).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy.sparse import coo_matrix, csr_matrix, triu
from scipy.sparse.csgraph import minimum_spanning_tree

from ..data import split_indices
from ..models import SparseAutoencoder
from ..run_dir import Labeling, RunDir
from ..run_schema import FAMILY_SCHEMA  # noqa: F401 (the contract, re-exported)
from ..store import EmbeddingStore
from .activation_scan import SparseRunningTopK, inference_sae, iter_activations
from .families_naming import family_label, name_families
from .labeling_config import LabelingConfig
from .run_info import read_run_info

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


def coactivation(sae, store: EmbeddingStore, rows: np.ndarray, m: int = 5, batch_size: int = 4096,
                 device: str | None = None) -> CoActivation:
    """Stream the rows through the SAE once: co-firing counts, and each feature's top m rows (the
    texts that name its family later, so no second pass is needed)."""
    with inference_sae(sae, device) as model:
        dev = next(model.parameters()).device
        d_sae = model.cfg.d_sae
        top = SparseRunningTopK(d_sae, m, dev)
        counts = csr_matrix((d_sae, d_sae), dtype=np.int64)
        for batch_rows, acts in iter_activations(model, store, rows, batch_size):
            r, f = (acts > 0).nonzero(as_tuple=True)
            top.update_sparse(f, batch_rows[r], acts[r, f])
            fired = coo_matrix((np.ones(len(r), np.int64), (r.cpu().numpy(), f.cpu().numpy())),
                               shape=(acts.shape[0], d_sae)).tocsr()
            counts = counts + (fired.T @ fired)
    top_rows = torch.where(top.values > 0, top.rows, -1).cpu().numpy()
    return CoActivation(counts.tocsr(), int(len(rows)), top_rows)


def coactivation_weights(co: CoActivation, min_cooccur: int = 2, max_density: float = 0.1) -> csr_matrix:
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


def extract_families(T: csr_matrix, fires: np.ndarray, min_weight: float = 0.2, min_children: int = 2
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


def build_families(run_dir: str | Path, *, min_weight: float = 0.2, min_children: int = 2,
                   min_cooccur: int = 2, max_density: float = 0.1, texts_per_member: int = 5,
                   labeling: LabelingConfig | None = None, batch_size: int = 4096,
                   device: str | None = None, into: Labeling | None = None) -> pd.DataFrame:
    """Find the feature families of a finished run and write them into the labelling `into`, named
    with its labels (default: the run's current labelling, whose top-level copy is refreshed).

    The pipeline's hook after labelling (report.html shows the file when it exists). Families are
    ordered by size, then by parent density; `family_id` is that rank."""
    run_dir = Path(run_dir)
    run = RunDir(run_dir)
    target = into or run.labeling() or Labeling(run_dir)
    info = read_run_info(run_dir)
    store = EmbeddingStore(Path(info["store_path"]).expanduser())
    sae = SparseAutoencoder.load(run.sae, device=device or "cpu")
    train_idx, _ = split_indices(len(store), float(info["val_fraction"]), int(info["seed"]))
    co = coactivation(sae, store, train_idx, texts_per_member, batch_size)
    T = max_spanning_tree(coactivation_weights(co, min_cooccur, max_density))
    fams = extract_families(T, co.fires, min_weight, min_children)
    fams.sort(key=lambda f: (-len(f[1]), -co.fires[f[0]], f[0]))
    members = [[p, *children] for p, children, _ in fams]
    keywords = name_families(members, co.top_rows, store, labeling or LabelingConfig(), sae)
    parent_labels, verdicts = _feature_labels(target, sae.cfg.d_sae)
    df = pd.DataFrame({
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
    })
    target.write_families(df)
    if into is None:
        run.publish(target)
    if not fams:
        log.warning("no feature families in %s: no parent has %d children tied to it with weight >= %s "
                    "(features that fire together at least %d times, each on at most %s of %d rows); "
                    "families.parquet is empty", target.folder, min_children, min_weight, min_cooccur, max_density, co.n_rows)
        return df
    log.info("%d feature families (%d features in them) -> %s", len(df), int(df["size"].sum()), target.families)
    return df


def _feature_labels(labeling: Labeling, d_sae: int) -> tuple[list[str], list[str]]:
    """Each feature's label and verdict from the labelling's features.parquet ("" where unknown)."""
    labels, verdicts = [""] * d_sae, [""] * d_sae
    if labeling.has_features():
        df = labeling.read_features()
        for f, lab, verdict in zip(df["feature_id"], df["label"], df["verdict"] if "verdict" in df else [""] * len(df)):
            if 0 <= f < d_sae and isinstance(lab, str):
                labels[f], verdicts[f] = lab, str(verdict)
    return labels, verdicts
