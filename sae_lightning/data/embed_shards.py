"""Embedding a store's missing shards, alone or beside other processes on the same store.

Every process (one `sae-embed`, each task of a SLURM array, each DDP rank) runs the same loop: take
the shards nobody holds, then wait for the ones others hold and take over any whose holder died.
A shard is always encoded as one `encode` call on exactly its own texts, by whichever process or
pool worker gets it, so the store is the same bit for bit however the work was split."""

from __future__ import annotations

import logging

import numpy as np

log = logging.getLogger(__name__)


def embed_missing(writer, embedder, todo: list[int], bar) -> None:
    """Embed the shards in `todo` that are still missing when their turn comes."""
    pool = embedder.start_pool() if embedder.devices and todo else None
    group = len(embedder.devices) if embedder.devices else 1
    done: list[int] = []
    try:
        for wait in (False, True):  # first the free shards, then those other processes hold
            todo = _one_pass(writer, embedder, todo, wait, pool, group, bar, done)
            if not todo:
                break
    finally:
        if pool is not None:
            embedder.stop_pool(pool)
    log.info("this process embedded %d of the store's %d shards", len(done), writer.n_shards)


def _one_pass(writer, embedder, todo: list[int], wait: bool, pool, group: int, bar, done: list[int]) -> list[int]:
    """Claim and embed shards, `group` at a time (one per pool worker); return those left to others."""
    left, queue = [], list(todo)
    while queue:
        claimed = []
        while queue and len(claimed) < (1 if wait else group):
            i = queue.pop(0)
            if wait:
                writer.claims.wait_claim(i)
            elif not writer.claims.try_claim(i):
                left.append(i)
                continue
            claimed.append(i)
        try:
            if claimed and writer.is_complete():  # another process finished the store meanwhile
                return []
            mine = [i for i in claimed if not writer.has_shard(i)]
            if mine:
                for i, block in zip(mine, _encode(writer, embedder, mine, pool)):
                    writer.write_shard(i, block)
                    bar.update(len(block))
                    done.append(i)
        finally:
            for i in claimed:
                writer.claims.release(i)
    return left


def _encode(writer, embedder, shards: list[int], pool) -> list[np.ndarray]:
    texts = [writer.shard_texts(i) for i in shards]
    if pool is None or len(shards) == 1:
        return [embedder.encode(t) for t in texts]
    # One pool chunk per shard: each worker encodes exactly one shard's texts, as a single process
    # would. Only the store's last shard can be short, and it comes last (the shards ascend).
    flat = np.concatenate([np.asarray(t, dtype=object) for t in texts]).tolist()
    out = embedder.encode_with_pool(flat, pool, writer.shard_size)
    return np.split(out, np.cumsum([len(t) for t in texts])[:-1])
