"""Process-wide state belongs to the commands: training and labelling through the Python API leave
thread counts, deterministic flags, the environment and malloc exactly as they found them, and
`runtime.apply` (what the sae-* commands call) is what sets them."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

# Runs in a fresh process: a snapshot of everything global, real calls, the snapshot again.
SCRIPT = r"""
import ctypes, json, os, sys
mallopt_calls = []

class SpyCDLL(ctypes.CDLL):  # any lookup of mallopt through ctypes is recorded
    def __getattr__(self, name):
        if name == "mallopt":
            mallopt_calls.append(name)
        return super().__getattr__(name)

ctypes.CDLL = SpyCDLL
import numba, torch, threadpoolctl
import sae_lightning as sl
from sae_lightning import runtime
from sae_lightning.label_run import label_run_dir
from sae_lightning.labels import LabelingConfig
import sae_lightning.pipeline, sklearn, keybert  # noqa: F401  (their BLAS/OpenMP pools load now)

# A user's own choices, none of them a default the library would pick.
torch.use_deterministic_algorithms(True, warn_only=True)
torch.utils.deterministic.fill_uninitialized_memory = True
numba.set_num_threads(1)
os.environ["USER_SETTING"] = "kept"

def state():
    return {"torch_threads": torch.get_num_threads(), "interop_threads": torch.get_num_interop_threads(),
            "numba_threads": numba.get_num_threads(),
            "pools": {p["filepath"]: p["num_threads"] for p in threadpoolctl.threadpool_info()},
            "deterministic": torch.are_deterministic_algorithms_enabled(),
            "warn_only": torch.is_deterministic_algorithms_warn_only_enabled(),
            "fill": torch.utils.deterministic.fill_uninitialized_memory,
            "cudnn_benchmark": torch.backends.cudnn.benchmark, "env": dict(os.environ),
            "mallopt_calls": list(mallopt_calls), "runtime_applied": dict(runtime.APPLIED)}

store, cache, out = sys.argv[1:4]
before = state()
run = sl.train_sae(store, "sae.d_sae=64", "sae.k=8", "trainer.max_epochs=1", "logger=none",
                   "trainer.enable_progress_bar=false", data={"batch_size": 128}, paths={"cache_dir": cache},
                   labeling={"m": 8}, output_dir=out)
after_fit = state()
label_run_dir(run.path, LabelingConfig(m=8))
after_label = state()
runtime.apply({})  # what the commands do: now the settings change, and the record says so
print(json.dumps({"before": before, "after_fit": after_fit, "after_label": after_label,
                  "features": (run.path / "features.parquet").is_file(), "applied": state()}))
"""


def common_pools(a: dict, b: dict) -> tuple[dict, dict]:
    """Thread pools of libraries loaded at both snapshots (a library loaded later has no 'before')."""
    both = a.keys() & b.keys()
    return {k: a[k] for k in both}, {k: b[k] for k in both}


@pytest.mark.slow
def test_fit_and_label_through_the_api_change_no_process_wide_state(small_store, cache_dir, tmp_path):
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(small_store.path), str(cache_dir), str(tmp_path / "run")],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    before = found["before"]
    assert found["features"]  # the run was labelled: the calls did real work
    for stage in ("after_fit", "after_label"):
        after = dict(found[stage])
        pools_before, pools_after = common_pools(before["pools"], after.pop("pools"))
        assert pools_after == pools_before, stage
        assert {k: v for k, v in after.items()} == {k: v for k, v in before.items() if k != "pools"}, stage
    assert before["mallopt_calls"] == [] and before["runtime_applied"] == {}
    applied = found["applied"]
    # The spy sees the commands' setter, so its silence above is meaningful; glibc accepts it on Linux.
    assert applied["mallopt_calls"] == ["mallopt"]
    assert applied["fill"] is False and applied["runtime_applied"]["fill_uninitialized_memory"] is False
    if sys.platform.startswith("linux"):
        assert applied["runtime_applied"]["keep_freed_mib"] == 1024


def test_limited_threads_restores_the_callers_threads():
    import threadpoolctl
    import torch

    from sae_lightning.runtime import limited_threads

    before = torch.get_num_threads()
    pools = [p["num_threads"] for p in threadpoolctl.threadpool_info()]
    with limited_threads(1):
        assert torch.get_num_threads() == 1
        pools_inside = threadpoolctl.threadpool_info()
        assert all(p["num_threads"] == 1 for p in pools_inside), [
            (p["internal_api"], p["num_threads"], p["filepath"]) for p in pools_inside
        ]
    assert torch.get_num_threads() == before
    assert [p["num_threads"] for p in threadpoolctl.threadpool_info()] == pools
    with limited_threads(None):
        assert torch.get_num_threads() == before


OMP_PROBE = """
import os, sys
import sae_lightning.cli, sae_lightning.validate, sae_lightning.hydra_setup  # what a command loads before its job
assert "torch" not in sys.modules, "torch is imported before the runtime settings can set OMP_WAIT_POLICY"
from sae_lightning import runtime
done = runtime.apply({"omp_wait_policy": "passive", "keep_freed_mib": 0})
print(os.environ.get("OMP_WAIT_POLICY"), done.get("omp_wait_policy"))
"""


@pytest.mark.parametrize("preset,expected", [(None, "PASSIVE PASSIVE"), ("ACTIVE", "ACTIVE ACTIVE")])
def test_commands_set_openmp_wait_policy_before_torch_loads_unless_the_user_did(preset, expected):
    """OpenMP reads OMP_WAIT_POLICY once, when torch loads it: the commands' runtime settings must
    run first, and a value the user exported wins."""
    import os

    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if preset:
        env["OMP_WAIT_POLICY"] = preset
    res = subprocess.run([sys.executable, "-c", OMP_PROBE], capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.split("\n")[-2] == expected
