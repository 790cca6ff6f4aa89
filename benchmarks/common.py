"""What every benchmark script shares: the machine description, Markdown tables, the matmul floor,
peak-RSS measurement in a child process, the built-in corpus as a source, and the import path
(scripts run as `python benchmarks/x.py`)."""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
K = 32  # TopK's k for every trainer the training benchmarks compare (trainers.py, bench_overhead.py)
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def wiki_all_source(limit: int | None = None, seed: int = 0):
    """The built-in corpus over its 11 topics (what `domain=wiki_all` composes), from its typed config."""
    from sae_lightning.data.sources import WikiVitalArticles
    from sae_lightning.schemas.domain import WIKI_TOPICS, WikiConfig

    return WikiVitalArticles(WikiConfig(name="wiki_all", topics=list(WIKI_TOPICS.values()), limit=limit, seed=seed))


def machine() -> dict:
    import torch

    cores_ = cores()
    mem = None
    try:
        import psutil

        mem = round(psutil.virtual_memory().total / 2**30, 1)
    except ImportError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    return {
        "date": _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "cpu": cpu_model(),
        "cores": cores_,
        "torch_threads": torch.get_num_threads(),
        "memory_gib": mem,
        "gpu": gpu,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }


def load() -> float:
    """1-minute load average: how many runnable processes shared the cores (2 here) just now."""
    return round(os.getloadavg()[0], 1)


def md_table(rows: list[dict], columns: list[str] | None = None) -> str:
    columns = columns or list(rows[0])

    def fmt(v) -> str:
        if v is None:
            return ""
        if isinstance(v, float):
            return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.3g}"
        return str(v)

    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(fmt(r.get(c)) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def matmul_rate(batch: int, d_in: int, d_sae: int, seconds: float = 3.0) -> dict:
    """Measured float32 torch.mm rate for the encoder's shape, x [batch, d_in] @ W [d_in, d_sae].

    Returns the best and the median rate over repeats of about `seconds` in all: the best is what
    the machine can do, the median what it did while shared."""
    import torch

    x, w = torch.randn(batch, d_in), torch.randn(d_in, d_sae)
    for _ in range(2):
        x @ w
    times, start = [], time.perf_counter()
    while time.perf_counter() - start < seconds or len(times) < 5:
        t = time.perf_counter()
        x @ w
        times.append(time.perf_counter() - t)
    times.sort()
    flops = 2 * batch * d_in * d_sae
    return {"gflops_best": flops / times[0] / 1e9, "gflops_median": flops / times[len(times) // 2] / 1e9}


def floor_samples_per_s(gflops: float, d_in: int, d_sae: int) -> float:
    """Samples/s if a step cost only the encoder's forward FLOPs (2 d_in d_sae per sample)."""
    return gflops * 1e9 / (2 * d_in * d_sae)


def peak_rss_mib() -> float:
    """This process's peak resident set (VmHWM: its own memory plus the file pages it has mapped and
    touched). getrusage's ru_maxrss would do but for Linux carrying the parent's peak over fork."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_child(code: str, timeout: float = 600) -> dict:
    """Run python code in a fresh interpreter (so its peak RSS is its own) and return the JSON it
    prints on its last line (the dict RESULT the code fills), with that process's peak RSS (MiB)."""
    wrapper = (
        f"import sys; sys.path.insert(0, {str(ROOT)!r}); sys.path.insert(0, {str(ROOT / 'benchmarks')!r})\n"
        + code
        + "\nimport json as _j\nfrom common import peak_rss_mib as _peak\n"
        "print(_j.dumps({**RESULT, 'peak_rss_mib': _peak()}))\n"
    )
    proc = subprocess.run([sys.executable, "-c", wrapper], capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"child failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_and_emit(ap: argparse.ArgumentParser, run, markdown, prepare=None) -> None:
    """How every benchmark script ends: parse its arguments (plus --json), `prepare(args)` if given,
    run, then write the results as JSON for run_all.py (when asked) and print the table."""
    ap.add_argument("--json", default=None, help="also write the results here (run_all.py reads them)")
    args = ap.parse_args()
    if prepare:
        prepare(args)
    result = run(args)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    print(markdown(result))
