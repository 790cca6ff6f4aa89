"""EmbeddingDataModule: deterministic split, shuffled batch reads, rank sharding, no whole-store load."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from sae_lightning.data import BatchIndexSampler, EmbeddingDataModule, split_indices


def test_split_is_deterministic_disjoint_and_complete():
    tr, va = split_indices(1000, 0.1, seed=0)
    tr2, va2 = split_indices(1000, 0.1, seed=0)
    assert np.array_equal(tr, tr2) and np.array_equal(va, va2)
    assert len(va) == 100 and not set(tr) & set(va) and len(tr) + len(va) == 1000
    assert not np.array_equal(va, split_indices(1000, 0.1, seed=1)[1])
    with pytest.raises(ValueError, match="val_fraction"):
        split_indices(10, 1.5, 0)


def test_batches_are_store_rows_and_each_train_row_appears_once_per_epoch(small_store):
    dm = EmbeddingDataModule(store_path=small_store.path, batch_size=64, val_fraction=0.1, seed=0, drop_last=False)
    dm.setup("fit")
    emb = np.asarray(small_store.embeddings)
    seen = []
    for batch in dm.train_dataloader():
        assert batch.dtype == torch.float32 and batch.shape[1] == 384
        seen.append(batch.numpy())
    rows = np.concatenate(seen)
    assert len(rows) == len(dm.train_idx)
    # every row is a train row of the store, none is a validation row
    assert {r.tobytes() for r in rows} == {r.tobytes() for r in emb[dm.train_idx]}
    val = np.concatenate([b.numpy() for b in dm.val_dataloader()])
    assert np.array_equal(val, emb[dm.val_idx])


def test_epoch_order_depends_only_on_seed_and_epoch():
    idx = np.arange(1000)
    a = BatchIndexSampler(idx, 100, shuffle=True, seed=5, drop_last=True)
    b = BatchIndexSampler(idx, 100, shuffle=True, seed=5, drop_last=True)
    b.set_epoch(1)
    first = [x.copy() for x in a]
    assert not all(np.array_equal(x, y) for x, y in zip(first, b))
    b.set_epoch(0)
    assert all(np.array_equal(x, y) for x, y in zip(first, b))
    assert all(np.all(np.diff(x) > 0) for x in first)  # sorted for sequential memory-map reads


def test_ranks_get_disjoint_equal_shards(monkeypatch):
    idx = np.arange(1050)
    per_rank = []
    for rank in range(2):
        monkeypatch.setattr("sae_lightning.data._dist_rank_world", lambda r=rank: (r, 2))
        s = BatchIndexSampler(idx, 100, shuffle=True, seed=0, drop_last=True)
        per_rank.append(np.concatenate(list(s)))
        v = BatchIndexSampler(idx, 100, shuffle=False, seed=0, drop_last=False)
        per_rank.append(np.concatenate(list(v)))
    train0, val0, train1, val1 = per_rank
    assert len(train0) == len(train1) == 500 and not set(train0) & set(train1)
    assert sorted(np.concatenate([val0, val1])) == list(range(1050))  # validation: every row once


def test_memory_map_by_default_and_in_memory_on_request(small_store):
    dm = EmbeddingDataModule(store_path=small_store.path, batch_size=32)
    dm.setup("fit")
    assert isinstance(dm.dataset.array, np.memmap)
    dm = EmbeddingDataModule(store_path=small_store.path, batch_size=32, in_memory=True)
    dm.setup("fit")
    assert not isinstance(dm.dataset.array, np.memmap)
    assert dm.dataset.array.flags.owndata  # a real copy in RAM, not a view of the map


def test_workers_read_the_same_batches(small_store):
    kw = dict(store_path=small_store.path, batch_size=50, seed=1)
    dm0, dm2 = EmbeddingDataModule(**kw, num_workers=0), EmbeddingDataModule(**kw, num_workers=2)
    dm0.setup("fit"), dm2.setup("fit")
    for a, b in zip(dm0.train_dataloader(), dm2.train_dataloader()):
        assert torch.equal(a, b)
