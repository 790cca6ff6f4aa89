"""The `runtime` group: process-wide settings that only the sae-* commands apply, once, before any
work (sae_lightning/runtime.py); the Python API never changes them. Each field states its default,
type, meaning and range once; conf/runtime/default.yaml is a preset on top."""

from __future__ import annotations

from dataclasses import dataclass

from .knobs import check_fields, flag, knob, one_of, threads, whole


@dataclass(frozen=True)
class RuntimeSettings:
    """benchmarks/bench_runtime.py measures them."""

    keep_freed_mib: int = knob(
        1024,
        "glibc malloc: freed blocks up to this many MiB stay in the heap for the next "
        "step instead of page-faulting fresh ones (0: glibc's defaults)",
        # mallopt takes a C int of bytes, which ctypes fills by masking: 4096 MiB became 0 (an mmap
        # for every allocation) and 2048 MiB a negative number, both accepted without a word
        whole(0, ((1 << 31) - 1) >> 20),
    )
    fill_uninitialized_memory: bool = knob(
        False,
        "under trainer.deterministic, torch's debugging fill of every new "
        "tensor with NaN (~15 % of a CPU step); the algorithms stay deterministic "
        "either way",
        flag(),
    )
    torch_threads: int | None = knob(
        None,
        "torch's intra-op threads (null: torch's default, one per core; 1 on a machine busy with other jobs)",
        threads(null=True),
    )
    small_op_threads: int | None = knob(
        1,
        "threads for the labelling's phases of many small operations (top-k "
        "merges, KeyBERT's loop, scoring; read as labeling.small_op_threads, not "
        "set here); null: the caller's",
        threads(null=True),
    )
    omp_wait_policy: str | None = knob(
        "passive",
        "OMP_WAIT_POLICY when the environment does not set it: idle OpenMP threads sleep instead of "
        "spinning (5-12x faster steps on cores other jobs share, 15-35 % slower on a quiet machine; null: OpenMP's "
        "default)",
        one_of("passive", "active", null=True),
    )

    def __post_init__(self) -> None:
        check_fields(self, "runtime")
