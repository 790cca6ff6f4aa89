"""EmbeddingDataModule: shuffled batches straight out of the store, which never has to fit in RAM.

Two shuffles (data.shuffle). `full`: any row may follow any other, and batches are read by
fancy-indexing the memory map with a sorted index array (one read per batch, no per-row Python);
every page touched counts as RSS, though, so a big store ends up all resident. `blocks`: contiguous
file blocks are shuffled, then rows within a window of blocks, and whole blocks are read into a
bounded cache (block_reader.py). The split and the per-epoch order depend only on the seed, and
each DDP rank reads its own equal-sized slice of the batches. The DataModule's state (checkpointed
by Lightning) is the epoch and the batches of it already trained on, so a run resumed mid-epoch
sees exactly the batches an uninterrupted one would."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from ..schemas.training import DataConfig
from .block_reader import BlockReader, block_shuffled_order
from .split import split_indices  # its home is split.py (no Lightning there); imported from here too
from .store import EMBEDDINGS, EmbeddingStore


def _dist_rank_world() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


class BatchIndexSampler(Sampler):
    """Yields one sorted index array per batch. Lightning calls `set_epoch` on it each epoch, so the
    order of epoch e is a function of (seed, e) alone — what makes a resumed run match. With
    `block_rows` set, shuffling is block-wise (see block_shuffled_order) instead of over all rows,
    and `prefetch`, when set, is told each next window's blocks as the current one starts."""

    def __init__(
        self,
        indices: np.ndarray,
        batch_size: int,
        shuffle: bool,
        seed: int,
        drop_last: bool,
        block_rows: int | None = None,
        window_blocks: int = 32,
    ) -> None:
        self.indices, self.batch_size, self.shuffle, self.seed, self.drop_last = (
            indices,
            batch_size,
            shuffle,
            seed,
            drop_last,
        )
        self.block_rows, self.window_blocks = block_rows, window_blocks
        self.prefetch: Callable[[np.ndarray], None] | None = None
        self.epoch = 0
        self.resume_at: tuple[int, int] | None = None  # (epoch, batches of it already trained on)
        self._block_order = np.empty(0, int)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _order(self) -> np.ndarray:
        if not self.shuffle:
            return self.indices
        if self.block_rows:
            order, self._block_order = block_shuffled_order(
                self.indices, self.seed, self.epoch, self.block_rows, self.window_blocks
            )
            return order
        return self.indices[np.random.default_rng([self.seed, self.epoch]).permutation(len(self.indices))]

    def _batches(self) -> list[np.ndarray]:
        order = self._order()
        n_full = len(order) // self.batch_size
        stop = n_full * self.batch_size if self.drop_last or len(order) % self.batch_size == 0 else len(order)
        return [order[i : i + self.batch_size] for i in range(0, stop, self.batch_size)]

    def _rank_batches(self) -> list[np.ndarray]:
        rank, world = _dist_rank_world()
        if world == 1:
            return self._batches()
        if self.shuffle:
            # Training: every rank must take the same number of steps or DDP hangs, so the
            # uneven tail of batches is dropped.
            batches = self._batches()
            return batches[rank::world][: len(batches) // world]
        # Evaluation: every row exactly once over all ranks; metrics are reduced as sums at the end.
        rows = self.indices[rank::world]
        return [rows[i : i + self.batch_size] for i in range(0, len(rows), self.batch_size)]

    def __iter__(self):
        batches = self._rank_batches()
        skip = self.resume_at[1] if self.resume_at is not None and self.resume_at[0] == self.epoch else 0
        ahead = self.prefetch is not None and self.shuffle and bool(self.block_rows) and len(self.indices) > 0
        if ahead:
            window_of_block = np.zeros(int(self.indices[-1]) // self.block_rows + 1, dtype=np.int64)
            window_of_block[self._block_order] = np.arange(len(self._block_order)) // self.window_blocks
        window = -1
        for b in batches[skip:]:
            yield np.sort(b)  # sorted rows read the memory map front to back, and group by block
            # Once a window's first batch has been read (its blocks are in), the next one is read ahead.
            if ahead and window_of_block[b[0] // self.block_rows] != window:
                window = window_of_block[b[0] // self.block_rows]
                self.prefetch(self._block_order[(window + 1) * self.window_blocks : (window + 2) * self.window_blocks])

    def __len__(self) -> int:
        return len(self._rank_batches())


class RowsDataset(Dataset):
    """Indexed by a whole batch of row numbers; returns a float32 tensor [B, d]. Reads through the
    memory map, a copy in RAM (in_memory), or, with `block_rows` set, a BlockReader caching
    `cache_blocks` blocks."""

    def __init__(
        self, store_path: str | Path, in_memory: bool = False, block_rows: int | None = None, cache_blocks: int = 32
    ) -> None:
        self.store_path, self.in_memory = str(store_path), in_memory
        self._array: np.ndarray | None = None
        self.reader: BlockReader | None = None
        if block_rows and not in_memory:
            store = EmbeddingStore(self.store_path)  # checks the store against its manifest first
            self.reader = BlockReader(store.path / EMBEDDINGS, block_rows, cache_blocks)

    @property
    def array(self) -> np.ndarray:
        # Opened lazily so each DataLoader worker maps the file itself instead of pickling it.
        if self._array is None:
            store = EmbeddingStore(self.store_path)
            # np.array copies; np.ascontiguousarray would hand the (already contiguous) map back.
            self._array = np.array(store.embeddings) if self.in_memory else store.embeddings
        return self._array

    def __getitem__(self, rows: np.ndarray) -> torch.Tensor:
        picked = self.reader.read(rows) if self.reader is not None else self.array[rows]
        # torch converts float16 to float32 ~8x faster than numpy (160 vs 20 us a batch of 512 x 384)
        return torch.from_numpy(np.ascontiguousarray(picked)).float()

    def __len__(self) -> int:
        return len(EmbeddingStore(self.store_path))


class EmbeddingDataModule(pl.LightningDataModule):
    def __init__(self, store_path: str | Path | None = None, settings: DataConfig | None = None) -> None:
        super().__init__()
        self.settings = settings = settings if settings is not None else DataConfig()
        self.shuffle, self.block_rows = settings.shuffle, settings.block_rows
        self.window_blocks = settings.window_blocks
        self.store_path, self.batch_size = store_path, settings.batch_size
        self.val_fraction, self.seed = settings.val_fraction, settings.seed
        self.num_workers, self.in_memory, self.drop_last = settings.num_workers, settings.in_memory, settings.drop_last
        self.val_batch_size = settings.val_batch_size
        self.train_idx: np.ndarray | None = None
        self.val_idx: np.ndarray | None = None
        self._train_sampler: BatchIndexSampler | None = None
        self._resume_at: tuple[int, int] | None = None

    @property
    def store(self) -> EmbeddingStore:
        if self.store_path is None:
            raise ValueError("EmbeddingDataModule has no store_path; build the store first (sae-embed)")
        return EmbeddingStore(self.store_path)

    def setup(self, stage: str | None = None) -> None:
        n = len(self.store)
        self.train_idx, self.val_idx = split_indices(n, self.val_fraction, self.seed)
        if len(self.train_idx) < self.batch_size and self.drop_last:
            self.batch_size = len(self.train_idx)  # a tiny store still trains: one batch per epoch
        # auto: a store that fits in one window, or in RAM anyway, gains nothing from blocks
        self.blocks = self.shuffle == "blocks" or (
            self.shuffle == "auto" and not self.in_memory and n > self.block_rows * self.window_blocks
        )
        # The window being read, and the next one read ahead in-process (workers overlap reads by themselves).
        self.dataset = RowsDataset(
            self.store_path,
            self.in_memory,
            self.block_rows if self.blocks else None,
            self.window_blocks * (2 if self.num_workers == 0 else 1),
        )

    def _loader(self, indices: np.ndarray, batch_size: int, shuffle: bool, drop_last: bool) -> DataLoader:
        sampler = BatchIndexSampler(
            indices,
            batch_size,
            shuffle,
            self.seed,
            drop_last,
            self.block_rows if self.blocks else None,
            self.window_blocks,
        )
        if self.dataset.reader is not None and self.num_workers == 0:
            sampler.prefetch = self.dataset.reader.prefetch
        if shuffle:
            sampler.resume_at, self._train_sampler = self._resume_at, sampler
        return DataLoader(
            self.dataset,
            sampler=sampler,
            batch_size=None,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            pin_memory=torch.cuda.is_available(),
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_idx, self.batch_size, True, self.drop_last)

    def state_dict(self) -> dict:
        """Where training is in its epoch. Lightning checkpoints this; the loop's `processed` count
        is the batches whose step has run (the loader itself has already read one ahead)."""
        if self._train_sampler is None or self.trainer is None:
            return {}
        done = self.trainer.fit_loop.epoch_loop.batch_progress.current.processed
        return {"epoch": int(self._train_sampler.epoch), "batches_done": int(done)}

    def load_state_dict(self, state: dict) -> None:
        if state:
            self._resume_at = (int(state["epoch"]), int(state["batches_done"]))

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_idx, self.val_batch_size, False, False)
