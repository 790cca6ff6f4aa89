"""SweepSummary: a Hydra callback that says which jobs of a multirun finished and which failed,
and why. Each job writes `job_status.json` into its own folder and refreshes the sweep's
`sweep_summary.json` from all of them, so it works when submitit runs jobs in other processes,
and when a failed job makes Hydra end the sweep with an error (after every job has run)."""

from __future__ import annotations

import contextlib
import json
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from ..atomic import atomic_write

log = logging.getLogger(__name__)


def job_status(config: DictConfig, job_return: JobReturn) -> dict:
    failed = job_return.status == JobStatus.FAILED
    value = job_return._return_value
    error = (str(value).splitlines() or [type(value).__name__])[0] if failed else None
    return {
        "job": int(config.hydra.job.num),
        "overrides": list(job_return.overrides or []),
        "status": "failed" if failed else "finished",
        "error": error,
        "fve": float(value) if not failed and isinstance(value, (int, float)) else None,
    }


def summarise(sweep: Path) -> list[dict]:
    """Refresh sweep_summary.json from every job folder's job_status.json; return the jobs."""
    jobs = sorted(
        (json.loads(p.read_text()) | {"dir": str(p.parent)} for p in sweep.glob("*/job_status.json")),
        key=lambda j: j["job"],
    )
    text = json.dumps(jobs, indent=2)
    atomic_write(sweep / "sweep_summary.json", lambda tmp: tmp.write_text(text))
    return jobs


HYDRA_JOB_LINE = "Error executing job with overrides: "  # hydra.core.utils.JobReturn.return_value


class _WithoutHydrasJobLine:
    """stderr less the line Hydra writes (in one write) for each failed job when its sweeper reads
    the job's result: the command's own line for that job names its overrides and the reason."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        return len(text) if text.startswith(HYDRA_JOB_LINE) else self._stream.write(text)

    def __getattr__(self, name: str) -> Any:  # flush, fileno, isatty, encoding: the stream's own
        return getattr(self._stream, name)


@contextlib.contextmanager
def without_hydras_job_line() -> Iterator[None]:
    """For the command (cli._launch) around a sweep only: the line is process-wide output, so the
    library never does this itself. A job's own error still reaches stderr (its traceback too)."""
    stream = sys.stderr
    sys.stderr = _WithoutHydrasJobLine(stream)
    try:
        yield
    finally:
        sys.stderr = stream


class SweepSummary(Callback):
    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        if str(config.hydra.mode) != "RunMode.MULTIRUN":
            return
        status = job_status(config, job_return)
        out = Path(config.hydra.runtime.output_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "job_status.json").write_text(json.dumps(status, indent=2))
        jobs = summarise(Path(config.hydra.sweep.dir))
        failed = sum(j["status"] == "failed" for j in jobs)
        what = f"fve={status['fve']:.4f}" if status["fve"] is not None else status["error"] or ""
        (log.error if status["status"] == "failed" else log.info)(
            "job #%d %s: %s (%s) | sweep so far: %d finished, %d failed",
            status["job"],
            " ".join(status["overrides"]),
            status["status"],
            what,
            len(jobs) - failed,
            failed,
        )
