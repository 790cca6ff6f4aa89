"""What each process-wide setting of conf/runtime/ is worth to a training step.

    python benchmarks/bench_runtime.py [--batch 512 4096] [--steps 40] [--rounds 3]

A TopK SAE (d_in 384, d_sae 3072, k 32) trained with its loss, AuxK, the decoder-gradient projection
and fused Adam, under torch's deterministic algorithms as `trainer.deterministic: true` runs it, in a
fresh process per setting (glibc's malloc thresholds cannot be put back). Settings run interleaved,
`--rounds` times each, and the table gives the median samples/s and its ratio to "none", the state a
Python user who calls the library gets (`sae-train` applies the runtime defaults: "cli defaults").
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

import common  # noqa: F401  (sets sys.path and env first)
from common import machine, md_table

SETTINGS = {
    "none": {"keep_freed_mib": 0, "fill_uninitialized_memory": True},
    "keep freed memory": {"keep_freed_mib": 1024, "fill_uninitialized_memory": True},
    "no NaN fill": {"keep_freed_mib": 0, "fill_uninitialized_memory": False},
    "cli defaults": {},  # conf/runtime/default.yaml: both of the above
}

CHILD = """
import json, sys, time
import torch
from sae_lightning.models import build_sae, sae_config
from sae_lightning.runtime import apply
settings, batch, steps = json.loads(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
torch.manual_seed(0)
torch.use_deterministic_algorithms(True)  # what Trainer(deterministic=True) does
apply(settings)
sae = build_sae(sae_config(architecture="topk", d_in=384, d_sae=3072, k=32))
opt = torch.optim.Adam(sae.parameters(), lr=4e-3, fused=True)
x = torch.nn.functional.normalize(torch.randn(steps + 5, batch, 384), dim=-1)
dead = torch.zeros(3072, dtype=torch.bool)
dead[:30] = True  # a settled run's few dead latents, so AuxK runs
for i in range(steps + 5):
    if i == 5:
        start = time.perf_counter()
    out = sae(x[i])
    sae.loss_terms(x[i], out, dead_mask=dead)["loss"].backward()
    sae.remove_gradient_parallel_to_decoder_directions()
    opt.step()
    opt.zero_grad(set_to_none=True)
    sae.set_decoder_norm_to_unit_norm()
print(json.dumps({"samples_per_s": steps * batch / (time.perf_counter() - start)}))
"""


def measure(settings: dict, batch: int, steps: int) -> float:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(settings), str(batch), str(steps)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])["samples_per_s"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, nargs="+", default=[512])
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    print(json.dumps(machine()), flush=True)
    rows = []
    for batch in args.batch:
        found: dict[str, list[float]] = {name: [] for name in SETTINGS}
        for _ in range(args.rounds):  # interleaved: a change in the machine's load hits every setting alike
            for name, settings in SETTINGS.items():
                found[name].append(measure(settings, batch, args.steps))
        base = statistics.median(found["none"])
        for name, values in found.items():
            med = statistics.median(values)
            rows.append({"batch": batch, "setting": name, "samples/s (median)": med, "vs none": f"{med / base:.2f}"})
    print(md_table(rows))


if __name__ == "__main__":
    main()
