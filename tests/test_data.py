"""EmbeddingDataModule: deterministic split, shuffled batch reads, rank sharding, no whole-store load."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sae_lightning.data.block_reader import BlockReader, block_shuffled_order
from sae_lightning.data.datamodule import BatchIndexSampler, EmbeddingDataModule, split_indices
from sae_lightning.data.store import StoreError
from sae_lightning.errors import UserError
from sae_lightning.schemas.training import DataConfig

# Small blocks and windows, so the 600-row store spans many windows and `auto` picks blocks.
BLOCKS = dict(block_rows=16, window_blocks=4)


def test_split_is_deterministic_disjoint_and_complete():
    tr, va = split_indices(1000, 0.1, seed=0)
    tr2, va2 = split_indices(1000, 0.1, seed=0)
    assert np.array_equal(tr, tr2) and np.array_equal(va, va2)
    assert len(va) == 100 and not set(tr) & set(va) and len(tr) + len(va) == 1000
    assert not np.array_equal(va, split_indices(1000, 0.1, seed=1)[1])
    with pytest.raises(ValueError, match="val_fraction"):
        split_indices(10, 1.5, 0)


def test_batches_are_store_rows_and_each_train_row_appears_once_per_epoch(small_store):
    dm = EmbeddingDataModule(small_store.path, DataConfig(batch_size=64, val_fraction=0.1, seed=0, drop_last=False))
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


@pytest.mark.parametrize("blocks", [{}, {"block_rows": 64, "window_blocks": 3}], ids=["full", "blocks"])
def test_a_resumed_sampler_yields_the_rest_of_its_epoch_only(blocks):
    """The checkpointed (epoch, batches done) makes the resumed epoch the uninterrupted one's tail;
    other epochs are whole. len() stays the epoch's, which is what Lightning's batch_idx counts in."""
    idx = np.arange(1000)
    whole = BatchIndexSampler(idx, 100, shuffle=True, seed=5, drop_last=True, **blocks)
    resumed = BatchIndexSampler(idx, 100, shuffle=True, seed=5, drop_last=True, **blocks)
    resumed.resume_at = (2, 3)
    for epoch in range(4):
        whole.set_epoch(epoch)
        resumed.set_epoch(epoch)
        expected = list(whole)[3:] if epoch == 2 else list(whole)
        got = list(resumed)
        assert len(got) == len(expected) and all(np.array_equal(a, b) for a, b in zip(got, expected)), epoch
        assert len(resumed) == len(whole) == 10


@pytest.mark.parametrize("blocks", [{}, {"block_rows": 64, "window_blocks": 3}], ids=["full", "blocks"])
def test_ranks_get_disjoint_equal_shards(monkeypatch, blocks):
    idx = np.arange(1050)
    per_rank = []
    for rank in range(2):
        monkeypatch.setattr("sae_lightning.data.datamodule._dist_rank_world", lambda r=rank: (r, 2))
        s = BatchIndexSampler(idx, 100, shuffle=True, seed=0, drop_last=True, **blocks)
        per_rank.append(np.concatenate(list(s)))
        v = BatchIndexSampler(idx, 100, shuffle=False, seed=0, drop_last=False)
        per_rank.append(np.concatenate(list(v)))
    train0, val0, train1, val1 = per_rank
    assert len(train0) == len(train1) == 500 and not set(train0) & set(train1)
    assert sorted(np.concatenate([val0, val1])) == list(range(1050))  # validation: every row once


def test_memory_map_by_default_and_in_memory_on_request(small_store):
    dm = EmbeddingDataModule(small_store.path, DataConfig(batch_size=32))
    dm.setup("fit")
    assert isinstance(dm.dataset.array, np.memmap)
    dm = EmbeddingDataModule(small_store.path, DataConfig(batch_size=32, in_memory=True))
    dm.setup("fit")
    assert not isinstance(dm.dataset.array, np.memmap)
    assert dm.dataset.array.flags.owndata  # a real copy in RAM, not a view of the map


def test_workers_read_the_same_batches(small_store):
    kw = dict(batch_size=50, seed=1)
    dm0, dm2 = (EmbeddingDataModule(small_store.path, DataConfig(**kw, num_workers=n)) for n in (0, 2))
    dm0.setup("fit"), dm2.setup("fit")
    for a, b in zip(dm0.train_dataloader(), dm2.train_dataloader()):
        assert torch.equal(a, b)


def test_block_order_takes_each_train_row_once_window_by_window():
    train, val = split_indices(3000, 0.1, seed=0)
    a, read_order = block_shuffled_order(train, seed=3, epoch=0, block_rows=64, window_blocks=5)
    assert sorted(a) == list(train) and not set(a) & set(val)  # each train row once, no val row
    assert np.array_equal(a, block_shuffled_order(train, 3, 0, 64, 5)[0])  # (seed, epoch) fix it
    assert not np.array_equal(a, block_shuffled_order(train, 3, 1, 64, 5)[0])
    assert sorted(read_order) == list(range(3000 // 64 + 1))
    for w in range(0, len(read_order), 5):  # the rows of one window come from its blocks alone
        n = np.isin(train // 64, read_order[w : w + 5]).sum()
        window, a = a[:n], a[n:]
        assert set(window // 64) <= set(read_order[w : w + 5])
    sampler = BatchIndexSampler(train, 100, shuffle=True, seed=3, drop_last=True, block_rows=64, window_blocks=5)
    assert len(list(sampler)) == len(train) // 100  # drop_last drops only the final partial batch


def test_block_mode_reads_each_block_once_and_returns_the_stored_rows(small_store):
    dm = EmbeddingDataModule(small_store.path, DataConfig(batch_size=32, seed=0, drop_last=False, **BLOCKS))
    dm.setup("fit")
    assert dm.blocks and dm.dataset.reader is not None  # auto: 600 rows > 16 x 4
    emb, reader = np.asarray(small_store.embeddings), dm.dataset.reader
    for epoch in range(2):
        loader = dm.train_dataloader()
        loader.sampler.set_epoch(epoch)
        before, seen = reader.blocks_read, []
        for rows in loader.sampler:
            batch = dm.dataset[rows]
            assert batch.dtype == torch.float32 and np.array_equal(batch.numpy(), emb[rows].astype(np.float32))
            assert len(reader.cached_blocks) + len(reader._pending) <= reader.cache_blocks == 2 * 4
            seen.append(rows)
        seen = np.concatenate(seen)
        assert sorted(seen) == list(dm.train_idx)
        # each block holding train rows read once (the read-ahead never evicts the current window),
        # or not at all when the last epoch left it cached
        read, n_blocks = reader.blocks_read - before, len(np.unique(dm.train_idx // 16))
        assert read == n_blocks if epoch == 0 else 0 < read <= n_blocks
    val = np.concatenate([b.numpy() for b in dm.val_dataloader()])
    assert np.array_equal(val, emb[dm.val_idx])


def test_auto_keeps_the_full_shuffle_for_small_stores_and_in_memory(small_store):
    dm = EmbeddingDataModule(small_store.path, DataConfig(batch_size=32))  # 600 rows < 8192 x 32
    dm.setup("fit")
    assert not dm.blocks and dm.dataset.reader is None and dm.train_dataloader().sampler.block_rows is None
    dm = EmbeddingDataModule(small_store.path, DataConfig(batch_size=32, in_memory=True, **BLOCKS))
    dm.setup("fit")
    assert not dm.blocks and dm.dataset.array.flags.owndata
    dm = EmbeddingDataModule(small_store.path, DataConfig(batch_size=32, shuffle="blocks"))
    dm.setup("fit")
    assert dm.blocks and dm.dataset.reader is not None
    with pytest.raises(UserError, match=r"^data.shuffle=rows is invalid; set data.shuffle to one of auto \| full"):
        EmbeddingDataModule(small_store.path, DataConfig(shuffle="rows"))


def test_workers_read_the_same_blocks(small_store):
    kw = dict(batch_size=50, seed=1, **BLOCKS)
    dm0, dm2 = (EmbeddingDataModule(small_store.path, DataConfig(**kw, num_workers=n)) for n in (0, 2))
    dm0.setup("fit"), dm2.setup("fit")
    assert dm2.blocks and dm2.dataset.reader._fd is None  # opened in each worker, not pickled open
    pairs = list(zip(dm0.train_dataloader(), dm2.train_dataloader()))
    assert len(pairs) == 540 // 50 and all(torch.equal(a, b) for a, b in pairs)


def test_a_damaged_embeddings_file_is_a_one_line_error(small_store, tmp_path):
    npy = tmp_path / "embeddings.npy"
    data = (small_store.path / "embeddings.npy").read_bytes()
    npy.write_bytes(data[: len(data) - 1000])
    with pytest.raises(StoreError, match=f"{npy} is truncated .*; delete {tmp_path}"):
        BlockReader(npy, 16, 4)
    npy.write_bytes(b"not an npy file" + data[100:])
    with pytest.raises(StoreError, match=f"{npy} is corrupt"):
        BlockReader(npy, 16, 4)
    npy.write_bytes(data)
    reader = BlockReader(npy, 16, 4)
    npy.write_bytes(data[: len(data) // 2])  # cut short after it was opened
    with pytest.raises(StoreError, match=f"{npy} ends inside row \\d+ .*it is truncated"):
        reader.read(np.arange(590, 600))
