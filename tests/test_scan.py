"""The one post-training scan (scan/stream.py) against a brute-force dense computation on a
small real store, both pair accumulators, and the bounded text counting it feeds."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from sae_lightning.data.datamodule import split_indices
from sae_lightning.labels import LabelingConfig
from sae_lightning.labels.naming.candidates import count_train_texts, doc_term_matrix
from sae_lightning.labels.naming.tfidf_baseline import tfidf_scores
from sae_lightning.models import build_sae, sae_config
from sae_lightning.scan import coactivation
from sae_lightning.scan.coactivation import PairCounts
from sae_lightning.scan.stream import scan_store


@pytest.fixture(scope="module")
def dense(small_store):
    """A random TopK SAE over the 600 real sentences, with its dense activations on every row."""
    torch.manual_seed(3)
    sae = build_sae(sae_config(architecture="topk", d_in=small_store.dim, d_sae=48, k=6))
    train_idx, val_idx = split_indices(len(small_store), 0.25, 0)
    with torch.no_grad():
        acts = sae.eval().encode(torch.from_numpy(np.array(small_store.embeddings, np.float32))).numpy()
    return sae, train_idx, val_idx, acts


@pytest.mark.parametrize("pair_bytes", [1 << 30, 0], ids=["dense-pairs", "sparse-pairs"])
def test_scan_equals_brute_force(small_store, dense, pair_bytes):
    sae, train_idx, val_idx, acts = dense
    m = 7
    scan = scan_store(sae, small_store, train_idx, val_idx, m=m, batch_size=53, min_cooccur=1, pair_bytes=pair_bytes)
    train = np.sort(train_idx)
    a = acts[train]
    fired = (a > 0).astype(np.int64)
    np.testing.assert_array_equal(scan.top.fire_counts, fired.sum(0))
    assert scan.n_train == len(train)
    np.testing.assert_array_equal(scan.coactivation.toarray(), fired.T @ fired)  # every pair, exactly
    assert scan.pairs_dropped_at == 0
    codes, names = pd.factorize(small_store.metadata()["domain"].to_numpy()[train], sort=True)
    assert scan.top.domains == list(names)
    mass = np.stack([np.where(a > 0, a, 0)[codes == j].sum(0) for j in range(len(names))], 1)
    np.testing.assert_allclose(scan.top.domain_mass, mass, rtol=1e-5, atol=1e-6)
    for f in range(a.shape[1]):
        order = np.argsort(-a[:, f], kind="stable")[:m]  # ties: the lower row first, as the scan does
        want = np.where(a[order, f] > 0, a[order, f], 0)
        np.testing.assert_allclose(scan.top.acts[f], want, rtol=1e-6)
        np.testing.assert_array_equal(scan.top.rows[f], np.where(want > 0, train[order], -1))
    val = np.sort(val_idx)
    np.testing.assert_array_equal(scan.val_rows, val)
    np.testing.assert_allclose(scan.val_firing.toarray(), np.where(acts[val] > 0, acts[val], 0).T, rtol=1e-6)


def test_pairs_kept_from_min_cooccur_and_rows_in_both_splits(small_store, dense):
    sae, train_idx, _, acts = dense
    rows = np.sort(train_idx)[:200]
    scan = scan_store(sae, small_store, rows, rows, m=3, batch_size=64, min_cooccur=2)
    fired = (acts[rows] > 0).astype(np.int64)
    full = fired.T @ fired
    want = np.where(full >= 2, full, 0)
    np.fill_diagonal(want, np.diag(full))
    np.testing.assert_array_equal(scan.coactivation.toarray(), want)
    np.testing.assert_allclose(scan.val_firing.toarray(), np.where(acts[rows] > 0, acts[rows], 0).T, rtol=1e-6)


def test_sparse_pairs_past_their_bound_only_undercount():
    rng = np.random.default_rng(0)
    d, n, k = 30, 400, 4
    feats = np.sort(np.stack([rng.choice(d, k, replace=False) for _ in range(n)]), axis=1)
    exact, capped = PairCounts(d, dense_bytes=0), PairCounts(d, dense_bytes=0, max_pairs=60, flush=50)
    for block in range(0, n, 40):  # batches of 40 rows
        f = feats[block : block + 40]
        r = np.repeat(np.arange(len(f)), k)
        exact.add(r, f.ravel())
        capped.add(r, f.ravel())
    full, got = exact.result().toarray(), capped.result().toarray()
    assert capped.dropped_at > 0 and (got != full).any()  # the bound was hit: some counts are lost ...
    assert (got <= full).all() and np.array_equal(np.diag(got), np.diag(full))  # ... never invented
    assert (full - got).max() <= capped.dropped_at * (n // 40)
    assert np.count_nonzero(np.triu(got, 1)) <= 60


@pytest.mark.parametrize("chunk", [100, 3000], ids=["a-row-a-run", "runs-of-rows"])
@pytest.mark.parametrize("dense_bytes", [1 << 30, 0], ids=["dense-pairs", "sparse-pairs"])
def test_a_dense_sae_s_pairs_are_expanded_in_bounded_runs_and_counted_exactly(
    small_store, monkeypatch, chunk, dense_bytes
):
    """A ReLU SAE fires on about half its latents, so a batch holds B·L0²/2 pairs (6.5 GB of
    indices for the study's JumpReLU at L0 271): they are expanded a run of whole rows at a time,
    never more than `chunk` pairs at once (or one row's, where that row alone holds more), and
    every pair is still counted."""
    torch.manual_seed(0)
    sae = build_sae(sae_config(architecture="relu", d_in=small_store.dim, d_sae=64))
    with torch.no_grad():
        acts = sae.eval().encode(torch.from_numpy(np.array(small_store.embeddings[:200], np.float32))).numpy()
    fired = acts > 0
    per_row = fired.sum(1)
    assert per_row.mean() > 16  # dense: L0 well above a TopK's k
    expanded, real = [], coactivation.row_pairs
    monkeypatch.setattr(coactivation, "row_pairs", lambda r, f: expanded.append(len(real(r, f)[0])) or real(r, f))
    counts = PairCounts(64, dense_bytes=dense_bytes, chunk=chunk)
    counts.add(*np.nonzero(fired))  # rows sorted, features increasing per row: what the scan hands over
    both = fired.astype(np.int64)
    np.testing.assert_array_equal(counts.result().toarray(), both.T @ both)
    assert sum(expanded) == int((per_row * (per_row - 1) // 2).sum()) and len(expanded) > 10
    assert max(expanded) <= max(chunk, int((per_row * (per_row - 1) // 2).max()))


def test_counting_only_the_top_texts_gives_the_same_candidates_and_tfidf(small_store):
    cfg = LabelingConfig()
    texts = small_store.metadata()["text"].to_numpy()
    train, _ = split_indices(len(small_store), 0.25, 0)
    top = np.random.default_rng(1).choice(train, (20, 6), replace=False)  # 20 "features" x 6 top texts
    full = count_train_texts(texts, train, cfg)
    part = count_train_texts(texts, train, cfg, rows=np.unique(top))
    assert part.counts.shape[0] == len(np.unique(top)) < full.counts.shape[0]
    a, b = doc_term_matrix(top, full, cfg), doc_term_matrix(top, part, cfg)
    np.testing.assert_array_equal(a.words, b.words)
    np.testing.assert_array_equal(a.matrix.toarray(), b.matrix.toarray())
    np.testing.assert_array_equal(tfidf_scores(a, full).toarray(), tfidf_scores(b, part).toarray())
    sub = part.subset(top[:3].ravel())  # the families' view: idf over their own texts, as before
    alone = count_train_texts(texts, np.unique(top[:3]), cfg)
    c, e = doc_term_matrix(top[:3], sub, cfg), doc_term_matrix(top[:3], alone, cfg)
    np.testing.assert_array_equal(c.words, e.words)
    np.testing.assert_allclose(tfidf_scores(c, sub).toarray(), tfidf_scores(e, alone).toarray(), rtol=1e-6)


def test_feature_blocks_bounded_by_entries_give_the_same_scores(small_store, dense, monkeypatch):
    """The hard-negative search, the AUROC scorer and the keyword hits work on feature blocks sized
    so that a [block, n_val] matrix stays bounded; blocks of a few features give the same numbers."""
    from sae_lightning.labels.scoring import auroc as label_scoring
    from sae_lightning.labels.scoring import keyword_hits, scoring_sets
    from sae_lightning.labels.scoring.auroc import LabelScorer, scored_rows

    sae, train_idx, val_idx, _ = dense
    scan = scan_store(sae, small_store, train_idx, val_idx, m=5, min_cooccur=None)
    texts = small_store.metadata()["text"].to_numpy()
    words = ["history", "war", "theorem", "painting", "number", "empire"]
    keywords = [[words[f % 6], words[(f + 1) % 6]] if f % 5 else [] for f in range(sae.cfg.d_sae)]
    label_emb = np.random.default_rng(0).standard_normal((sae.cfg.d_sae, small_store.dim)).astype(np.float32)

    def scores():
        sets = scoring_sets.sets_from_firing(scan.val_firing, scan.val_rows, small_store, 5, 30, 10, seed=0)
        rows = scored_rows(sets)
        scorer = LabelScorer(sets, rows, np.array(small_store.embeddings[rows], np.float32))
        auroc = scorer.auroc(label_emb, np.array([bool(k) for k in keywords]))
        hits = keyword_hits.keyword_precision_recall(keywords, texts[sets.val_rows], sets.firing, {})
        return sets.hard_rows, auroc, hits

    want = scores()
    for module, name in (
        (scoring_sets, "BLOCK_ENTRIES"),
        (label_scoring, "BLOCK_ENTRIES"),
        (keyword_hits, "HOLDS_ENTRIES"),
    ):
        monkeypatch.setattr(module, name, 3 * len(val_idx))  # three features per block
    got = scores()
    np.testing.assert_array_equal(got[0], want[0])
    for a, b in zip([*got[1], *got[2]], [*want[1], *want[2]]):
        np.testing.assert_allclose(a, b, equal_nan=True)
    assert np.isfinite(want[2][0]).any()  # some keyword was found: the hits were really compared
