"""Process-wide settings: the malloc thresholds, torch's thread count and its deterministic-mode
memory fill. Only the command-line entry points call `apply`, once, from the `runtime` config group
(its schema: schemas/runtime.py); importing or calling the library leaves the process as it found it.

Where library code needs a setting for a while (fewer threads in a loop of small operations;
the flags Lightning's Trainer sets for a fit) it uses the scoped context managers at the end of this
file, which put the previous state back on exit.

Why keep freed memory: every training step allocates and frees the same large tensors (the
[batch, d_sae] pre-activations, the gradients). glibc serves a block above its mmap threshold (128
KiB, raised on the fly to at most 32 MiB) with a fresh mmap and trims the heap top above its trim
threshold, so the next step page-faults and the kernel zero-fills the same pages again. Raising both
keeps the blocks for reuse, as jemalloc or tcmalloc would, without an LD_PRELOAD; the price is that
the process holds on to its peak heap until it exits (benchmarks/bench_runtime.py measures it)."""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys
from collections.abc import Iterator
from typing import Any

from .schemas.knobs import from_node
from .schemas.runtime import RuntimeSettings

# torch is imported inside the functions: `apply` must set OpenMP's wait policy before torch (and
# its OpenMP runtime, which reads the variable once when it loads) is first imported.

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's <malloc.h>

# What `apply` set in this process, by setting: mallopt's thresholds cannot be read back.
APPLIED: dict[str, Any] = {}


def keep_freed_memory(limit: int) -> bool:
    """Set glibc's mmap and trim thresholds to `limit` bytes for the rest of the process.
    False, and nothing changed, where the C library is not glibc (macOS, musl, Windows)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the C library the process already runs on
    except (OSError, AttributeError):
        return False
    # musl's mallopt is a stub that returns 0; glibc returns 1 for each accepted setting.
    return bool(mallopt(M_MMAP_THRESHOLD, limit)) and bool(mallopt(M_TRIM_THRESHOLD, limit))


def apply(settings: RuntimeSettings | dict[str, Any] | None) -> dict[str, Any]:
    """For entry points only: set the process-wide settings; returns (and records in APPLIED) what was set."""
    if not isinstance(settings, RuntimeSettings):
        settings = from_node(RuntimeSettings, settings)
    done: dict[str, Any] = {}
    if settings.omp_wait_policy and "torch" not in sys.modules:  # later, OpenMP has read it already
        done["omp_wait_policy"] = os.environ.setdefault("OMP_WAIT_POLICY", settings.omp_wait_policy.upper())
    import torch

    if settings.keep_freed_mib:
        done["keep_freed_mib"] = settings.keep_freed_mib if keep_freed_memory(settings.keep_freed_mib << 20) else 0
    # Trainer(deterministic=True) turns torch's debugging fill on with the deterministic algorithms
    # (NaN into each torch.empty, ~100 per step: ~15 % of a CPU step); the algorithms stay deterministic.
    torch.utils.deterministic.fill_uninitialized_memory = settings.fill_uninitialized_memory
    done["fill_uninitialized_memory"] = settings.fill_uninitialized_memory
    if settings.torch_threads:
        torch.set_num_threads(settings.torch_threads)
        done["torch_threads"] = settings.torch_threads
    APPLIED.update(done)
    return done


# ---- scoped settings for library code: the previous state comes back on exit -------------------


@contextlib.contextmanager
def limited_threads(n: int | None) -> Iterator[None]:
    """At most n threads for torch and for the BLAS/OpenMP pools numpy uses, inside the block.

    For phases made of thousands of small tensor/BLAS operations (running top-k merges, KeyBERT's
    per-document loop, the scoring): with a pool each one pays for waking its workers, and on a busy
    machine for waiting on a descheduled one (2 cores at load 4.4: a 6144-feature labelling took 20 s
    with 2 threads, 10 s with 1). None leaves the caller's threads."""
    import torch

    if n is None:
        yield
        return
    from threadpoolctl import threadpool_info, threadpool_limits

    before = torch.get_num_threads()
    # torch may already be at n while numpy's pools are not (a caller that set torch's threads only)
    if n >= before and all(p["num_threads"] <= n for p in threadpool_info()):
        yield
        return
    torch.set_num_threads(min(n, before))
    try:
        with threadpool_limits(limits=n):
            yield
    finally:
        torch.set_num_threads(before)


@contextlib.contextmanager
def kept_global_state() -> Iterator[None]:
    """Put back, on exit, what a Lightning fit changes for the whole process: the deterministic-
    algorithm flags and memory fill (Trainer(deterministic=...)), cuDNN's benchmark flag, and the
    environment (CUBLAS_WORKSPACE_CONFIG, PL_GLOBAL_SEED, DDP's ranks and ports)."""
    import torch

    saved = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.utils.deterministic.fill_uninitialized_memory,
        torch.backends.cudnn.benchmark,
        torch.backends.cudnn.deterministic,
        dict(os.environ),
    )
    try:
        yield
    finally:
        deterministic, warn_only, fill, benchmark, cudnn_deterministic, env = saved
        torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)
        torch.utils.deterministic.fill_uninitialized_memory = fill
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = benchmark, cudnn_deterministic
        restore_environ(env)


def restore_environ(saved: dict[str, str]) -> None:
    """Put os.environ back as `saved` (a `dict(os.environ)` taken before): what was added since is
    removed, what was changed is reset."""
    for key in set(os.environ) - set(saved):
        del os.environ[key]
    os.environ.update(saved)
