"""Feature families: co-activation counts, the maximum spanning tree, families named by KeyBERT."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.sparse import csr_matrix

from sae_lightning.data.datamodule import split_indices
from sae_lightning.data.embed import Embedder, build_store
from sae_lightning.data.sources import NpyEmbeddings
from sae_lightning.data.store import EmbeddingStore
from sae_lightning.families.build import (
    FAMILIES_FILE,
    CoActivation,
    _feature_labels,
    build_families,
    coactivation,
    coactivation_weights,
    extract_families,
    max_spanning_tree,
)
from sae_lightning.families.naming import family_label, name_families
from sae_lightning.label_run import label_run_dir
from sae_lightning.labels import LabelingConfig
from sae_lightning.models import SparseAutoencoder, build_sae, sae_config
from sae_lightning.pipeline import train
from sae_lightning.report import write_report
from sae_lightning.run_dir import RunDir
from sae_lightning.schemas.domain import NpyConfig
from sae_lightning.schemas.families import FamiliesConfig

from .conftest import compose_cfg

N_PARENTS, N_CHILDREN = 12, 2


@pytest.fixture(scope="module")
def planted_run(tmp_path_factory, cache_dir):
    """A hand-built SAE whose features are a known hierarchy: 12 parent directions, each with 2
    child directions that only ever occur together with it (orthonormal, so every feature fires
    exactly when its direction is in the row). A run dir around it, over an npy store."""
    root = tmp_path_factory.mktemp("hier")
    rng = np.random.default_rng(0)
    n_dirs = N_PARENTS * (1 + N_CHILDREN)
    dirs = np.linalg.qr(rng.standard_normal((48, n_dirs)))[0].T  # [n_dirs, 48] orthonormal rows
    children = {p: [N_PARENTS + p * N_CHILDREN + c for c in range(N_CHILDREN)] for p in range(N_PARENTS)}
    n = 3000
    parent = rng.integers(N_PARENTS, size=n)
    child = np.array([rng.choice(children[p]) if rng.random() < 2 / 3 else -1 for p in parent])
    x = (0.5 + rng.random((n, 1))) * dirs[parent]
    x[child >= 0] += (0.5 + rng.random(((child >= 0).sum(), 1))) * dirs[child[child >= 0]]
    np.save(root / "x.npy", x.astype(np.float32))
    store = build_store(
        NpyEmbeddings(NpyConfig(path=str(root / "x.npy"), model_name="synthetic")),
        Embedder(show_progress=False),
        cache_dir,
    )
    sae = build_sae(sae_config(architecture="topk", d_in=48, d_sae=n_dirs, k=2, metadata={"model_name": "synthetic"}))
    with torch.no_grad():
        sae.W_dec.copy_(torch.from_numpy(dirs).float())
        sae.W_enc.copy_(sae.W_dec.T)
        sae.b_enc.fill_(-0.01), sae.b_dec.zero_()  # off directions (pre ~1e-8 of rounding) stay silent
    run = root / "run"
    sae.save(run / "sae")
    (run / "run.json").write_text(json.dumps({"store_path": str(store.path), "val_fraction": 0.1, "seed": 0}))
    return run, children


def test_planted_hierarchy_is_found_exactly(planted_run):
    run, children = planted_run
    df = build_families(run)
    assert (run / FAMILIES_FILE).is_file()
    got = {int(p): sorted(int(c) for c in ch) for p, ch in zip(df["parent"], df["children"])}
    assert got == children
    assert np.allclose(df["mean_weight"], 1.0)  # a child fires only with its parent
    assert (df["label"] == "").all()  # bare embeddings: no texts to name a family with


@pytest.fixture(scope="module")
def real_run(tmp_path_factory, wiki_topk_run) -> Path:
    """A tiny labelled run over real wiki sentences (Mathematics, History, Arts); a copy, since
    build_families rewrites its families table."""
    out = tmp_path_factory.mktemp("real") / "run"
    shutil.copytree(wiki_topk_run, out)
    return out


def _loaded(run: Path):
    info = json.loads((run / "run.json").read_text())
    store = EmbeddingStore(info["store_path"])
    train_idx, _ = split_indices(len(store), info["val_fraction"], info["seed"])
    return SparseAutoencoder.load(run / "sae"), store, train_idx


def test_families_from_the_one_scan_equal_the_old_two_pass_way(real_run, tmp_path):
    """label_run_dir builds the families from its one scan, the labels it just made and its counts
    of the top texts. Computed the old way (a dense co-activation of the train split, the family
    texts counted again on their own, labels read back from features.parquet) the table is the same."""
    run = tmp_path / "run"
    shutil.copytree(real_run, run)
    info = json.loads((run / "run.json").read_text())
    info["families"] = {**info["families"], "min_children": 1}  # more families to compare
    (run / "run.json").write_text(json.dumps(info))
    label_run_dir(run, LabelingConfig())
    got = pd.read_parquet(run / FAMILIES_FILE)

    sae, store, train_idx = _loaded(run)
    train = np.sort(train_idx)
    with torch.no_grad():
        acts = sae.eval().encode(torch.from_numpy(np.array(store.embeddings[train], np.float32))).numpy()
    fired = (acts > 0).astype(np.int64)
    tpm, settings = info["families"]["texts_per_member"], info["families"]
    order = np.argsort(-acts, axis=0, kind="stable")[:tpm].T  # [d_sae, tpm] best rows per feature
    top_rows = np.where(np.take_along_axis(acts.T, order, 1) > 0, train[order], -1)
    co = CoActivation(csr_matrix(fired.T @ fired), len(train), top_rows)
    T = max_spanning_tree(coactivation_weights(co, settings["min_cooccur"], settings["max_density"]))
    fams = extract_families(T, co.fires, settings["min_weight"], 1)
    fams.sort(key=lambda f: (-len(f[1]), -co.fires[f[0]], f[0]))
    assert len(fams) >= 3
    assert got["parent"].tolist() == [p for p, _, _ in fams]
    assert [list(c) for c in got["children"]] == [c for _, c, _ in fams]
    for a, (_, _, w) in zip(got["child_weights"], fams):
        np.testing.assert_allclose(a, w)
    members = [[p, *c] for p, c, _ in fams]
    assert [list(k) for k in got["keywords"]] == name_families(members, top_rows, store, LabelingConfig(), sae)
    labels, verdicts = _feature_labels(RunDir(run).labeling(), sae.cfg.d_sae)
    assert got["parent_label"].tolist() == [labels[p] for p, _, _ in fams]
    assert got["label"].tolist() == [
        family_label(list(k), [verdicts[f] for f in fam]) for k, fam in zip(got["keywords"], members)
    ]


def test_coactivation_counts_equal_brute_force(real_run):
    sae, store, train_idx = _loaded(real_run)
    co = coactivation(sae, store, train_idx, m=3, batch_size=97)  # uneven batches
    with torch.no_grad():
        acts = sae.eval().encode(torch.from_numpy(np.asarray(store.embeddings[train_idx], np.float32))).numpy()
    fired = (acts > 0).astype(np.int64)
    assert np.array_equal(co.counts.toarray(), fired.T @ fired)
    best = np.sort(acts, axis=0)[::-1][:3].T  # [d_sae, 3] the three largest activations
    got = np.where(
        co.top_rows >= 0,
        acts[np.searchsorted(train_idx, np.maximum(co.top_rows, 0)), np.arange(acts.shape[1])[:, None]],
        0,
    )
    assert np.allclose(got, np.where(best > 0, best, 0), atol=1e-6)


def _kruskal_max_weight(W) -> float:
    """Total weight of a maximum spanning forest, by plain Kruskal with union-find."""
    W = W.tocoo()
    parent = list(range(W.shape[0]))

    def root(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    total = 0.0
    for w, i, j in sorted(((w, i, j) for i, j, w in zip(W.row, W.col, W.data) if i < j), reverse=True):
        ri, rj = root(i), root(j)
        if ri != rj:
            parent[ri] = rj
            total += w
    return total


def test_families_of_a_real_run_hang_on_a_maximum_spanning_tree(real_run):
    sae, store, train_idx = _loaded(real_run)
    df = build_families(real_run, FamiliesConfig(min_children=1))
    assert len(df) >= 3
    assert pd.read_parquet(real_run / FAMILIES_FILE)["family_id"].tolist() == list(range(len(df)))
    co = coactivation(sae, store, train_idx, m=5)
    defaults = FamiliesConfig()
    W = coactivation_weights(co, defaults.min_cooccur, defaults.max_density)
    T = max_spanning_tree(W)
    # T is a spanning forest of W (edges = nodes touched - components) of maximum total weight.
    from scipy.sparse.csgraph import connected_components

    touched = np.flatnonzero(np.diff(W.indptr) > 0)
    n_comp = connected_components(W[touched][:, touched], directed=False)[0]
    assert T.nnz // 2 == len(touched) - n_comp
    assert T.sum() / 2 == pytest.approx(_kruskal_max_weight(W))
    assert np.allclose(T[T.nonzero()], W[T.nonzero()])
    seen = []
    for p, kids, ws in zip(df["parent"], df["children"], df["child_weights"]):
        assert 0 <= p < sae.cfg.d_sae
        for c, w in zip(kids, ws):
            assert 0 <= c < sae.cfg.d_sae and T[p, c] == pytest.approx(w) and w >= 0.2  # a tree edge
            assert co.fires[c] <= co.fires[p]  # the parent is the more frequent feature
        seen += list(kids)
    assert len(seen) == len(set(seen))  # a feature is a child in one family at most
    assert (df["label"] != "").mean() >= 0.8  # named by KeyBERT over the members' top texts
    feats = pd.read_parquet(real_run / "features.parquet")
    assert df["parent_label"].tolist() == feats.set_index("feature_id").loc[df["parent"], "label"].tolist()
    page = write_report(real_run).read_text()
    assert 'id="families"' in page and str(df["label"].iloc[0]).split(",")[0] in page


def _hand_built_run(root: Path, x: np.ndarray, cache_dir: Path) -> Path:
    """A run dir over an npy store of `x`, with a random TopK SAE (d_sae 32, k 4)."""
    np.save(root / "x.npy", x.astype(np.float32))
    store = build_store(
        NpyEmbeddings(NpyConfig(path=str(root / "x.npy"), model_name="synthetic")),
        Embedder(show_progress=False),
        cache_dir,
    )
    torch.manual_seed(0)
    sae = build_sae(
        sae_config(architecture="topk", d_in=x.shape[1], d_sae=32, k=4, metadata={"model_name": "synthetic"})
    )
    run = root / "run"
    sae.save(run / "sae")
    (run / "run.json").write_text(json.dumps({"store_path": str(store.path), "val_fraction": 0.1, "seed": 0}))
    return run


def _assert_empty_families(run: Path) -> None:
    df = build_families(run)
    assert len(df) == 0
    table = pd.read_parquet(run / FAMILIES_FILE)
    assert len(table) == 0 and list(table.columns) == list(df.columns)


def test_duplicated_corpus_gives_an_empty_families_table(tmp_path, cache_dir):
    """Every row the same: every firing feature fires on every row, so all are too dense for the graph."""
    row = np.random.default_rng(1).standard_normal(16)
    _assert_empty_families(_hand_built_run(tmp_path, np.tile(row, (200, 1)), cache_dir))


def test_tiny_corpus_gives_an_empty_families_table(tmp_path, cache_dir):
    _assert_empty_families(_hand_built_run(tmp_path, np.random.default_rng(2).standard_normal((4, 16)), cache_dir))


def test_tree_edges_all_below_min_weight_give_no_family():
    """The IndexError of the issue: no tree edge survives `min_weight`."""
    from scipy.sparse import csr_matrix

    from sae_lightning.families.build import extract_families

    T = max_spanning_tree(csr_matrix(np.array([[0, 0.1, 0.1], [0.1, 0, 0], [0.1, 0, 0]])))
    assert extract_families(T, np.array([9, 3, 2]), min_weight=0.2, min_children=1) == []
    assert extract_families(T, np.array([9, 3, 2]), min_weight=0.05, min_children=1) == [(0, [1, 2], [0.1, 0.1])]


def test_the_issue_run_ends_with_an_empty_families_table(tmp_path, cache_dir):
    """`sae-train domain=wiki_mathematics domain.limit=300 sae.d_sae=64 sae.k=16` crashed at the families step."""
    out = tmp_path / "run"
    train(
        compose_cfg(
            [
                "domain=wiki_mathematics",
                "domain.limit=300",
                "sae.d_sae=64",
                "sae.k=16",
                "logger=none",
                "trainer.enable_progress_bar=false",
            ],
            out,
            cache_dir,
        )
    )
    assert (out / "features.parquet").is_file() and (out / "report.html").is_file()
    families = pd.read_parquet(out / FAMILIES_FILE)
    page = (out / "report.html").read_text()
    assert 'id="families"' in page and (len(families) > 0 or "families.parquet is empty" in page)
