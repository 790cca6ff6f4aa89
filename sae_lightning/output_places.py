"""Where a command's output folder may go: never inside a run's folder or the embedding cache, and
the cache never in a run's folder. Above path_checks (which the atomic writers import) since it asks
the run and store layouts."""

from __future__ import annotations

from pathlib import Path

from .errors import UserError


def check_outside_runs_and_stores(folder: str | Path, settings: str, own: Path | None = None) -> None:
    """An output folder of sae-diff, sae-compare or sae-export is never inside a run's folder (which
    holds only that run's own files; `own`, a run's diff/, is where sae-diff writes) nor inside the
    embedding cache, whose stores are deleted and rebuilt whole: both were taken, and the output
    mixed into a run or lost with its store."""
    from .data.store import store_cache_of  # deferred: the commands' --help and early refusals stay light
    from .run_dir import RunDir

    folder = Path(folder).expanduser().absolute()
    if own is None or not folder.is_relative_to(own.expanduser().absolute()):
        RunDir(folder).check_not_inside_a_run(settings)
    cache = store_cache_of(folder)
    if cache is not None:
        raise UserError(
            f"{folder} is inside the embedding cache ({cache}), whose folders are stores deleted and "
            f"rebuilt whole; change {settings} to a folder outside it"
        )


def check_cache_outside_runs(cache_dir: str | Path, settings: str = "paths.cache_dir") -> None:
    """The embedding cache is never a run's folder or inside one: paths.cache_dir=<a run> was taken,
    and the run then held a stores/ of every store built after it."""
    from .data.store import STORES  # deferred, as above
    from .run_dir import RunDir

    RunDir(Path(cache_dir).expanduser().absolute() / STORES).check_not_inside_a_run(settings)
