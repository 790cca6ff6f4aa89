"""Block-shuffled reading of a store too large for RAM: the epoch's rows are grouped into contiguous
file blocks, and a window of blocks is read whole (one pread each) and shuffled within.

Why not the memory map: every page a process touches through a map counts as its RSS, so a full
random shuffle over a 3.6 GiB store ends at 3.6 GiB RSS, and with a cold page cache each row is a
random 4 KiB disk read. Reading whole blocks with pread copies them out of the page cache into a
buffer of fixed size (the only RSS), and turns the disk reads into large sequential ones."""

from __future__ import annotations

import os
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np

from .store import StoreError

IN_FLIGHT = np.iinfo(np.int64).max


def block_shuffled_order(
    indices: np.ndarray, seed: int, epoch: int, block_rows: int, window_blocks: int
) -> tuple[np.ndarray, np.ndarray]:
    """`indices` (sorted store rows) in the order of epoch `epoch`, and the block numbers in the
    order they are read: the blocks of `block_rows` rows the indices fall into are permuted, and
    the rows of each run of `window_blocks` blocks are permuted together. A function of (seed, epoch)
    alone, so a resumed run reads the same order; a batch spans one window (two at a window's
    edge), which is what bounds the reader's cache."""
    rng = np.random.default_rng([seed, epoch])
    if len(indices) == 0:
        return indices, np.empty(0, int)
    n_blocks = int(indices[-1]) // block_rows + 1
    bounds = np.searchsorted(indices, np.arange(n_blocks + 1) * block_rows)
    blocks = rng.permutation(n_blocks)
    windows = []
    for w in range(0, n_blocks, window_blocks):
        rows = np.concatenate([indices[bounds[b] : bounds[b + 1]] for b in blocks[w : w + window_blocks]])
        windows.append(rows[rng.permutation(len(rows))])
    return np.concatenate(windows), blocks


def rebuild_hint(path: Path) -> str:
    return f"delete {path.parent} and run `sae-embed` again"


def npy_layout(path: Path) -> tuple[int, tuple[int, int], np.dtype]:
    """(data offset, shape, dtype) of a C-ordered 2-d .npy file whose data is all there."""
    hint = rebuild_hint(path)
    try:
        with open(path, "rb") as fh:
            version = np.lib.format.read_magic(fh)
            read_header = (
                np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            )
            shape, fortran_order, dtype = read_header(fh)
            offset = fh.tell()
    except FileNotFoundError as err:
        raise StoreError(f"{path} is missing; {hint}") from err
    except (ValueError, OSError) as err:
        raise StoreError(f"{path} is corrupt (bad .npy header: {str(err).splitlines()[0]}); {hint}") from err
    if len(shape) != 2 or fortran_order or dtype.hasobject:
        raise StoreError(
            f"{path} holds {dtype} {shape} (fortran_order={fortran_order}), not a C-ordered 2-d "
            f"array of embeddings; {hint}"
        )
    size, want = path.stat().st_size, offset + shape[0] * shape[1] * dtype.itemsize
    if size < want:
        raise StoreError(f"{path} is truncated ({size:,} bytes, its header needs {want:,}); {hint}")
    return offset, shape, dtype


class BlockReader:
    """Rows of an .npy file, read as whole blocks of `block_rows` rows into an LRU cache of at most
    `cache_blocks` blocks (allocated once: its size is this reader's RAM). Opened lazily and never
    pickled, so each DataLoader worker reads through its own file handle and cache.

    Copying a block out of the page cache takes about 1 ms (a few batches' worth of gathering), and a
    window's first batch needs all its blocks at once, so the sampler names the next window's blocks
    ahead (`prefetch`) and they are read on background threads while this window's batches are
    served; the main thread alone keeps the books."""

    def __init__(self, path: str | Path, block_rows: int, cache_blocks: int, io_threads: int = 2) -> None:
        if block_rows < 1 or cache_blocks < 1:
            raise ValueError(f"block_rows={block_rows} and cache_blocks={cache_blocks} must be >= 1")
        self.path, self.block_rows, self.cache_blocks = Path(path), int(block_rows), int(cache_blocks)
        self.io_threads = io_threads
        self.offset, self.shape, self.dtype = npy_layout(self.path)
        self.row_bytes = self.shape[1] * self.dtype.itemsize
        self.blocks_read = 0  # tests and benchmarks check the I/O with it
        self._fd: int | None = None

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if not k.startswith("_")} | {"_fd": None}

    def __del__(self) -> None:
        if getattr(self, "_fd", None) is not None:
            os.close(self._fd)

    def _open(self) -> None:
        # A forked worker inherits the parent's descriptor and cache: it closes its copy, starts its own.
        if self._fd is None or self._pid != os.getpid():
            if self._fd is not None:
                os.close(self._fd)
            self._fd, self._pid = os.open(self.path, os.O_RDONLY), os.getpid()
            self._buf = np.empty((self.cache_blocks * self.block_rows, self.shape[1]), self.dtype)
            self._block_of_slot = np.full(self.cache_blocks, -1)
            self._slot_of_block = np.full(-(-self.shape[0] // self.block_rows), -1)
            self._last_used = np.zeros(self.cache_blocks, dtype=np.int64)
            self._tick = 0
            self._pending: dict[int, tuple[int, Future]] = {}  # block -> (slot, its background read)
            # pread releases the GIL: blocks are copied beside the main thread, and queued on the disk together
            self._pool = ThreadPoolExecutor(self.io_threads, thread_name_prefix="block-reader")

    @property
    def cached_blocks(self) -> np.ndarray:
        """Block numbers held in RAM now (at most cache_blocks)."""
        return np.sort(self._block_of_slot[self._block_of_slot >= 0]) if self._fd is not None else np.empty(0, int)

    def _pread(self, block: int, slot: int) -> None:
        start = block * self.block_rows
        n = min(self.block_rows, self.shape[0] - start)
        view = memoryview(self._buf[slot * self.block_rows : slot * self.block_rows + n]).cast("B")
        pos, done = self.offset + start * self.row_bytes, 0
        while done < len(view):  # pread may return less than asked; 0 means the file ended early
            got = os.preadv(self._fd, [view[done:]], pos + done)
            if got == 0:
                raise StoreError(
                    f"{self.path} ends inside row {start + done // self.row_bytes} (byte {pos + done:,}); "
                    f"it is truncated; {rebuild_hint(self.path)}"
                )
            done += got

    def prefetch(self, blocks: np.ndarray) -> None:
        """Start reading `blocks` (at most cache_blocks, none of them in use now) in the background,
        into the least recently used slots."""
        self._open()
        self._tick += 1
        for block in map(int, blocks):
            if self._slot_of_block[block] >= 0 or block in self._pending:
                continue
            slot = int(np.argmin(self._last_used))
            if self._last_used[slot] == IN_FLIGHT:  # every slot is being read into: wait for them
                self._settle(np.array(list(self._pending)))
                slot = int(np.argmin(self._last_used))
            self._last_used[slot] = IN_FLIGHT  # never evicted while its read is under way
            if self._block_of_slot[slot] >= 0:
                self._slot_of_block[self._block_of_slot[slot]] = -1
            self._block_of_slot[slot] = -1
            self._pending[block] = (slot, self._pool.submit(self._pread, block, slot))
            self.blocks_read += 1

    def _settle(self, wait_for: np.ndarray = ()) -> None:
        """Put finished background reads (and those of `wait_for`, once done) into the cache."""
        for block, (slot, read) in list(self._pending.items()):
            if read.done() or block in wait_for:
                del self._pending[block]
                read.result()  # a truncated file raises here
                self._block_of_slot[slot], self._slot_of_block[block], self._last_used[slot] = block, slot, self._tick

    def _gather(self, rows: np.ndarray, slots: np.ndarray) -> np.ndarray:
        """`rows` out of the cache, `slots` holding their blocks."""
        return self._buf[slots * self.block_rows + rows % self.block_rows]

    def read(self, rows: np.ndarray) -> np.ndarray:
        """The given rows (any order), [len(rows), dim] in the file's dtype."""
        self._open()
        rows = np.asarray(rows, dtype=np.int64)
        if len(rows) and (rows.min() < 0 or rows.max() >= self.shape[0]):
            raise IndexError(f"rows out of range for {self.path} with {self.shape[0]} rows")
        block_of_row = rows // self.block_rows
        if self._pending:
            self._settle()
        slots = self._slot_of_block[block_of_row]
        self._tick += 1
        if slots.min(initial=0) >= 0:  # the usual case, every block cached: one gather, no bookkeeping arrays
            self._last_used[slots] = self._tick
            return self._gather(rows, slots)
        hit = slots >= 0
        self._last_used[slots[hit]] = self._tick
        # Rows of cached blocks are copied out before any load may evict their block, and the rest
        # is loaded a cacheful at a time: a batch across two windows' edge, or one wider than the
        # cache, reads no block twice.
        out = np.empty((len(rows), self.shape[1]), self.dtype)
        out[hit] = self._gather(rows[hit], slots[hit])
        missing = np.unique(block_of_row[~hit])
        for i in range(0, len(missing), self.cache_blocks):
            group = missing[i : i + self.cache_blocks]
            self.prefetch(group)
            self._settle(group)
            sel = np.isin(block_of_row, group)
            out[sel] = self._gather(rows[sel], self._slot_of_block[block_of_row[sel]])
        return out
