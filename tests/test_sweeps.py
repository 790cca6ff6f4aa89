"""Hydra multirun across domains: one folder per job (also with DDP), failures reported without
stopping the sweep, clean W&B runs per job, the Optuna sweeper and the submitit launcher."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from sae_lightning.run_dir import RunDir

from .cli_runner import Result, run_process, run_script
from .helpers import synthetic_npy
from .wandb_records import finished_records

SAE_TRAIN = str(Path(sys.executable).parent / "sae-train")
FAST = [
    "sae.d_sae=64",
    "sae.k=4",
    "data.batch_size=256",
    "trainer.max_epochs=1",
    "labeling.enabled=false",
    "trainer.enable_progress_bar=false",
    "embedder.show_progress=false",
]


@pytest.fixture(scope="module")
def npy_path(tmp_path_factory) -> Path:
    return synthetic_npy(tmp_path_factory.mktemp("sweep_npy"), n_dirs=32, seed=1)


def sweep(args: list[str], tmp_path: Path, cache: Path, process: bool = False) -> tuple[Result, Path]:
    """`sae-train -m args` in this process (cli_runner), or as a process where the test needs one."""
    argv = ["-m", *args, f"paths.log_dir={tmp_path}", f"paths.cache_dir={cache}"]
    if process:
        res = run_process(SAE_TRAIN, *argv)
    else:
        res = run_script("sae-train", *argv)
    (sweep_dir,) = (tmp_path / "train" / "multiruns").iterdir()
    return res, sweep_dir


def job_dirs(sweep_dir: Path) -> list[Path]:
    return sorted(p for p in sweep_dir.iterdir() if p.is_dir() and (p / "run.json").exists())


@pytest.mark.slow
def test_two_domain_sweep_gives_two_finished_runs_with_clean_wandb_runs(tmp_path, cache_dir):
    res, sweep_dir = sweep(
        ["domain=wiki_mathematics,wiki_history", "domain.limit=150", "logger=wandb", *FAST], tmp_path, cache_dir
    )
    assert res.code == 0, res.err[-3000:]
    jobs = job_dirs(sweep_dir)
    assert [p.name for p in jobs] == ["0_wiki_mathematics", "1_wiki_history"]
    run_ids = set()
    for job in jobs:
        assert RunDir(job).metrics()["fve"] is not None
        (run_file,) = job.glob("wandb/offline-run-*/run-*.wandb")
        assert any(r.WhichOneof("record_type") == "exit" for r in finished_records(run_file))
        run_ids.add(run_file.name)
    assert len(run_ids) == 2  # each job its own W&B run
    summary = json.loads((sweep_dir / "sweep_summary.json").read_text())
    assert [j["status"] for j in summary] == ["finished", "finished"]


@pytest.mark.slow
def test_a_failing_job_is_reported_and_the_others_run(npy_path, tmp_path, cache_dir):
    res, sweep_dir = sweep(
        ["domain=npy", f"domain.path={npy_path}", "sae.d_sae=0,64,32", "logger=none", *FAST[1:]], tmp_path, cache_dir
    )
    assert res.code != 0  # the sweep as a whole says something failed
    summary = json.loads((sweep_dir / "sweep_summary.json").read_text())
    assert [j["status"] for j in summary] == ["failed", "finished", "finished"]
    assert "sae.d_sae=0 is invalid" in summary[0]["error"]  # refused by validate.py before the job did any work
    assert "sweep so far: 2 finished, 1 failed" in res.out + res.err


def test_unknown_domain_in_a_sweep_list_is_one_line(tmp_path):
    res = run_script("sae-train", "-m", "domain=wiki_mathematics,wiki_cooking", f"paths.log_dir={tmp_path}")
    assert res.code == 2 and res.err.strip().startswith("error: unknown domain wiki_cooking; known:")


@pytest.mark.slow
def test_ddp_inside_a_multirun_writes_one_folder_per_job(npy_path, tmp_path, cache_dir):
    res, sweep_dir = sweep(
        [
            "domain=npy",
            f"domain.path={npy_path}",
            "trainer=ddp_cpu",
            "sae.k=2,4",
            "logger=none",
            *[a for a in FAST if not a.startswith("sae.k")],
        ],
        tmp_path,
        cache_dir,
        process=True,  # DDP starts its ranks by running the command line again
    )
    assert res.code == 0, res.out[-2000:] + res.err[-3000:]
    assert len(list((tmp_path / "train" / "multiruns").iterdir())) == 1  # no sweep of the child ranks
    folders = sorted(p.name for p in sweep_dir.iterdir() if p.is_dir())
    assert folders == ["0_npy", "1_npy"], folders
    for job in job_dirs(sweep_dir):
        assert (job / "sae" / "cfg.json").exists() and (job / "metrics.json").exists()
    assert not (tmp_path / "train" / "runs").exists()  # no stray single-run folders


@pytest.mark.slow
def test_optuna_sweeper_runs_trials_and_reports_the_best(npy_path, tmp_path, cache_dir):
    res, sweep_dir = sweep(
        [
            "hparams_search=topk_fve",
            "hydra.sweeper.n_trials=2",
            "domain=npy",
            f"domain.path={npy_path}",
            "logger=none",
            *[a for a in FAST if not a.startswith("sae.")],
        ],
        tmp_path,
        cache_dir,
    )
    assert res.code == 0, res.err[-3000:]
    best = (sweep_dir / "optimization_results.yaml").read_text()
    assert "best_value" in best and "module.lr" in best
    assert len(job_dirs(sweep_dir)) == 2


@pytest.mark.slow
def test_submitit_local_launcher_runs_a_two_job_sweep(npy_path, tmp_path, cache_dir):
    res, sweep_dir = sweep(
        [
            "hydra/launcher=submitit_local",
            "hydra.launcher.timeout_min=10",
            "domain=npy",
            f"domain.path={npy_path}",
            "sae.k=2,4",
            "logger=none",
            *[a for a in FAST if not a.startswith("sae.k")],
        ],
        tmp_path,
        cache_dir,
    )
    assert res.code == 0, res.err[-3000:]
    jobs = job_dirs(sweep_dir)
    assert len(jobs) == 2 and all((j / "metrics.json").exists() for j in jobs)
    assert (sweep_dir / ".submitit").is_dir()
