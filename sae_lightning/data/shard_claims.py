"""Which process embeds which shard: a POSIX byte-range lock per shard on one `claims` file.

Several processes (a SLURM array, two `sae-embed` on one machine, DDP ranks) embed the same store
at once; each takes shard i by locking byte i. A killed process's locks vanish with it, so its
shard is free again without any clean-up, and lockf works on NFS, where clusters keep caches.
Finishing takes every byte at once, so nobody is half way through a shard while the store is
assembled."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path


class ShardClaims:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # One descriptor per process for its whole life: closing any descriptor of the file would
        # drop every POSIX lock this process holds on it.
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)

    def try_claim(self, i: int) -> bool:
        try:
            fcntl.lockf(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, i)
            return True
        except OSError:  # EAGAIN/EACCES: another process holds it
            return False

    def wait_claim(self, i: int) -> None:
        fcntl.lockf(self._fd, fcntl.LOCK_EX, 1, i)

    def release(self, i: int) -> None:
        fcntl.lockf(self._fd, fcntl.LOCK_UN, 1, i)

    @contextlib.contextmanager
    def all_shards(self) -> Iterator[None]:
        """Every shard at once (waits for whoever is embedding one)."""
        fcntl.lockf(self._fd, fcntl.LOCK_EX, 0, 0)
        try:
            yield
        finally:
            fcntl.lockf(self._fd, fcntl.LOCK_UN, 0, 0)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
