"""One thread for the phases made of many small tensor/BLAS operations.

The running top-k merges, KeyBERT's per-document loop (two tiny cosine-similarity matrix products
per feature) and the scoring are thousands of small operations. With a thread pool each one pays
for waking its workers, and on a busy machine for waiting on a descheduled one: on this 2-core
machine at load 4.4 the whole labelling of a 6144-feature SAE took 20 s with 2 threads and 10 s
with 1. Big matrix products (the SAE encoder, the sentence-transformer) keep the caller's threads.
"""
from __future__ import annotations

import contextlib
from typing import Iterator

import torch
from threadpoolctl import threadpool_limits


@contextlib.contextmanager
def single_threaded() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(limits=1):  # numpy's BLAS (OpenBLAS/MKL) and OpenMP
            yield
    finally:
        torch.set_num_threads(before)
