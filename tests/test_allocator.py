"""keep_freed_memory: a loop that allocates and frees the same large tensors stops page-faulting
once glibc keeps the freed blocks. Each case runs in its own process: the setting cannot be undone."""

from __future__ import annotations

import subprocess
import sys

import pytest

LOOP = """
import resource, sys, torch
from sae_lightning.allocator import keep_freed_memory
kept = keep_freed_memory() if sys.argv[1] == "keep" else None
x = torch.randn(2048, 384)
w = torch.randn(384, 6144)
for _ in range(3):  # warm-up: the first blocks are always fresh
    (x @ w).relu_().sum()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):  # a 48 MiB product, freed each time, like a batch-4096 step's pre-activations
    (x @ w).relu_().sum()
print(kept, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def faults(mode: str) -> tuple[str, int]:
    out = subprocess.run([sys.executable, "-c", LOOP, mode], capture_output=True, text=True, check=True)
    kept, n = out.stdout.split()
    return kept, int(n)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_keep_freed_memory_stops_page_faults_in_a_step_loop():
    kept, with_keep = faults("keep")
    _, default = faults("default")
    assert kept == "True"
    # glibc maps every block above 32 MiB afresh: 20 x 48 MiB is ~245,000 page faults. With the
    # blocks kept, 25,000-50,000 were measured (the heap settling in).
    assert default > 100_000, default
    assert with_keep < default / 4, (with_keep, default)
