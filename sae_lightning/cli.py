"""Console entry points. Thin on purpose: compose the config with Hydra, check it, call a stage."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import os
import signal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from .errors import UserError
from .lean_imports import defer_heavy_helpers
from .quiet import drop_third_party_warnings, drop_wandb_offline_notice, log_file_failures_once, no_model_loading_bars
from .terminal import printable  # texts, labels and paths are data: never terminal control sequences

if TYPE_CHECKING:
    from omegaconf import DictConfig
# Hydra, the config tree and its checks are imported by the Hydra commands (_launch), not at import:
# the plain commands (sae-search, sae-compare) never compose a config.

log = logging.getLogger("sae_lightning")
# This process's failed multirun jobs, one line each: printed when the sweep ends, in place of
# Hydra's traceback of the first one.
_failed_jobs: list[str] = []
# What existed of a single run's log folder before Hydra created it: a failed command removes the rest.
_existed_before: list[Path] = []


def refuse(*errors: object) -> NoReturn:
    """End the command on bad input: one `error:` line each, exit status 2 (never a traceback). A
    path or value holding a newline or a terminal escape is written escaped, so it stays one line."""
    for err in errors:
        print(f"error: {printable(err)}", file=sys.stderr)
    sys.exit(2)


@contextlib.contextmanager
def _interruptible() -> Iterator[None]:
    """Ctrl-C and SIGTERM end a command with one line and status 128 + the signal (130, 143), not a
    traceback; a closed pipe ends it silently (141). SIGTERM arrives as an exception too, like
    Ctrl-C, so every writer removes what it had not finished on the way out (a relabel's temp
    folder; sae-train checkpoints first, pipeline.train) instead of leaving it for the next run."""
    from .training.interrupts import RunInterrupted, ending_at_once, raise_pending, stopping_on_signals

    restore, ended = stopping_on_signals(), False
    try:
        yield
        raise_pending()  # a Ctrl-C that landed in a finaliser near the end is not lost
        sys.stdout.flush()  # here, not at exit: a full disk under stdout is then the line below
        ended = ending_at_once()  # a signal while the process ends gets its line too
    except (KeyboardInterrupt, RunInterrupted) as raised:
        stop = raised if isinstance(raised, RunInterrupted) else RunInterrupted(signal.SIGINT)
        print(f"interrupted by {stop}: stopped; nothing half-written is left", file=sys.stderr)
        sys.exit(stop.exit_code)
    except BrokenPipeError:  # the reader went away (`sae-search ... | head`): stop quietly, as cat does
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit's flush
        sys.exit(128 + signal.SIGPIPE)
    except OSError as err:  # `> /dev/full`, or a file on a full disk: was an OSError traceback from print
        from .atomic import DISK_FULL

        if err.errno not in DISK_FULL or err.filename:  # a file's write is its writer's line
            raise
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        refuse(f"disk full while writing the output ({os.strerror(err.errno)}); free space there or redirect it")
    finally:
        if not ended:
            restore()


def _own_error(err: BaseException) -> UserError | None:
    """The project's error behind `err`: itself, or the cause Hydra's instantiate wrapped in a
    multi-line InstantiationException; a config value that is missing or does not resolve counts as
    bad input. None for anything else (code reading a key that is not there included), which keeps
    its traceback: a genuine bug."""
    from omegaconf.errors import InterpolationResolutionError, MissingMandatoryValue

    cause: BaseException | None = err
    while cause is not None:
        if isinstance(cause, UserError):
            return cause
        if isinstance(cause, (InterpolationResolutionError, MissingMandatoryValue)):
            return UserError(f"config: {str(cause).splitlines()[0]}; fix the value on the command line or under conf/")
        cause = cause.__cause__
    return None


def _one_line_errors(task: Callable[[DictConfig], object]) -> Callable[[DictConfig], object]:
    """Bad input ends the command with one line and exit status 2, not a traceback. In a multirun
    the error is re-raised so Hydra records that job as failed and the sweep goes on."""

    @functools.wraps(task)
    def wrapper(cfg: DictConfig) -> object:
        from .training.interrupts import RunInterrupted
        from .validate import check_config

        try:
            check_config(cfg)  # again per job: a multirun's jobs are composed only here
            apply_runtime(cfg)  # first: OpenMP's wait policy must be set before torch is imported
            drop_wandb_offline_notice()
            no_model_loading_bars()
            drop_third_party_warnings()
            log_file_failures_once()
            return task(cfg)
        except (KeyboardInterrupt, RunInterrupted):
            _discard_log_folder()
            raise
        except Exception as raised:
            err = _own_error(raised)
            if err is None:
                raise
            from hydra.core.hydra_config import HydraConfig
            from hydra.types import RunMode

            if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
                log.error("%s", err)  # the job's line in the sweep's log and console
                hc = HydraConfig.get()
                _failed_jobs.append(f"job #{hc.job.num} ({' '.join(hc.overrides.task) or 'defaults'}): {err}")
                raise err from None
            _log_to_files(err)  # the console gets it once, from refuse()
            _discard_log_folder()
            refuse(err)

    return wrapper


def _discard_log_folder() -> None:
    """A single run that ends on bad input or an interrupt leaves no log folder of its own."""
    from .failed_run import discard_log_folder, hydra_log_folder

    folder = hydra_log_folder()
    if _existed_before and folder is not None:
        root = logging.getLogger()
        for handler in [h for h in root.handlers if isinstance(h, logging.FileHandler)]:
            if Path(handler.baseFilename).parent == folder:  # its file goes with the folder
                root.removeHandler(handler)
                with contextlib.suppress(OSError):  # a full disk: its last lines are lost with it
                    handler.close()
        discard_log_folder(folder, _existed_before[0])


def _log_to_files(err: UserError) -> None:
    """The error into the run's log files only: a log kept after a failure says why it ended."""
    record = log.makeRecord(log.name, logging.ERROR, __file__, 0, "%s", (err,), None)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)


def apply_runtime(cfg: DictConfig) -> None:
    """The process-wide settings of conf/runtime/: the commands set them, the library never does."""
    if cfg.get("runtime") is not None:
        from omegaconf import OmegaConf

        from . import runtime

        log.debug("runtime settings applied: %s", runtime.apply(OmegaConf.to_container(cfg.runtime, resolve=True)))


@_interruptible()
def _launch(task: Callable[[DictConfig], object], config_name: str, command: str) -> None:
    import hydra

    from .conf_dir import check_conf_files
    from .hydra_help import help_page, wants_help
    from .hydra_setup import (
        CONF_DIR,
        check_choices,
        check_sweep_dir,
        check_sweep_folders,
        compose_and_check,
        ddp_child_argv,
        register_hydra,
    )

    register_hydra()
    _failed_jobs.clear()
    _existed_before.clear()
    sys.argv[1:] = ddp_child_argv(sys.argv[1:])
    try:
        check_conf_files(CONF_DIR)
        check_choices([a for a in sys.argv[1:] if not a.startswith("-")])
        if wants_help(sys.argv[1:]) and "--hydra-help" not in sys.argv[1:]:
            print(help_page(config_name, command, sys.argv[1:]))  # Hydra's page, without its slow listing
            return
        if not any(a.startswith("-") for a in sys.argv[1:]):  # flags (-m, --cfg, ...): checked per job
            run_folder = compose_and_check(config_name, sys.argv[1:])
            if run_folder is not None:
                from .failed_run import existing_ancestor
                from .run_dir import RunDir

                _existed_before.append(existing_ancestor(run_folder))
                if RunDir(run_folder).holds_run():  # a resume: the run's .hydra/ keeps how it was made
                    sys.argv.append("hydra.output_subdir=null")
        else:
            check_sweep_dir(sys.argv[1:])
            if any(a in ("-m", "--multirun") for a in sys.argv[1:]):
                check_sweep_folders(config_name, sys.argv[1:])
    except Exception as raised:  # a UserError, or a value that does not resolve (task_name=${nope})
        err = _own_error(raised)
        if err is None:
            raise
        refuse(err)
    multirun = any(a in ("-m", "--multirun") or a.startswith(("hparams_search=", "hydra.mode=")) for a in sys.argv[1:])
    # An error Hydra meets itself (a job's, or a value of its own run folder such as task_name=${nope})
    # reaches us below instead of Hydra printing its traceback.
    os.environ["HYDRA_FULL_ERROR"] = "1"
    from .training.sweep import without_hydras_job_line  # a failed job's line is ours (refuse, below)

    try:
        with without_hydras_job_line() if multirun else contextlib.nullcontext():
            hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name=config_name)(_one_line_errors(task))()
    except Exception as raised:
        from hydra.errors import HydraException

        own = _own_error(raised)
        if own is None and _existed_before:  # Hydra writing .hydra/ onto a full disk
            from .failed_run import log_folder_full

            own = log_folder_full(raised)
        if not multirun and own is not None:
            _discard_log_folder()  # an error Hydra met before the command began (its log folder on a full disk)
            refuse(own)
        if not multirun or (own is None and not isinstance(raised, HydraException)):
            raise
        if not _failed_jobs:  # the sweep itself failed: a job's config does not compose
            _failed_jobs.append(str(_own_error(raised) or raised).splitlines()[0])
    if _failed_jobs:
        refuse(*_failed_jobs)


def _embed(cfg: DictConfig) -> None:
    from .data.embed import build_store_from_cfg

    store = build_store_from_cfg(cfg)
    print(f"embedding store: {store.path} ({len(store)} x {store.dim}, {store.model_name})")


def _train(cfg: DictConfig) -> float | None:
    from .pipeline import train
    from .quiet import apply_hydra_logger_levels

    apply_hydra_logger_levels()  # after the pipeline's imports: importing Lightning resets its loggers
    metrics = train(cfg)
    return metrics.get("fve") if metrics else None  # what hparams_search maximises and the sweep summary records


def _label(cfg: DictConfig) -> None:
    from .hydra_setup import on_command_line
    from .label_run import label_run_dir
    from .run_dir import RunDir
    from .run_reader import finished_run_info
    from .run_schema import headline_line
    from .schemas.knobs import from_node
    from .schemas.labeling import LabelingConfig

    settings = from_node(LabelingConfig, cfg.labeling)
    if not on_command_line("seed", "labeling.seed"):  # a relabel samples as the run's own labelling did
        settings = dataclasses.replace(settings, seed=int(finished_run_info(cfg.run_dir)["seed"]))
    _, summary = label_run_dir(cfg.run_dir, settings, report=cfg.report)  # the report is part of the labelling
    run = RunDir(cfg.run_dir)
    labeling = run.labeling()
    print(f"labelling {labeling.id} (now current; earlier ones kept under {labeling.folder.parent})")
    print(f"features: {labeling.features}\n{headline_line(summary)}")
    if labeling.report.is_file():
        print(f"report: {run / labeling.REPORT}")


def embed() -> None:
    """sae-embed: build (or find) the embedding store for a domain and embedder."""
    _launch(_embed, "embed", "sae-embed")


def train() -> None:
    """sae-train: embed if needed, train the SAE, label its features, write the run folder."""
    _launch(_train, "config", "sae-train")


def label() -> None:
    """sae-label: label a finished run folder again, without retraining."""
    _launch(_label, "label", "sae-label")


# ---- argparse commands (no Hydra config to compose: they read finished run dirs) ----------------


def plain_command(main: Callable[[list[str]], None]) -> Callable[[], None]:
    """Bad input (UserError) ends a plain command with one line and exit status 2, as in _launch."""

    @functools.wraps(main)
    def wrapper() -> None:
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
        drop_wandb_offline_notice()
        no_model_loading_bars()
        defer_heavy_helpers()
        try:
            with _interruptible():
                main(sys.argv[1:])
        except UserError as err:
            refuse(err)

    return wrapper


def _search(argv: list[str]) -> None:
    from .command_parser import CommandParser

    p = CommandParser(
        prog="sae-search",
        description="The features a query activates, and the store's "
        "nearest texts before and after clamping features up or down.",
    )
    p.add_argument("run_dir", help="a finished run dir")
    p.add_argument("query", help="a sentence")
    p.add_argument(
        "--clamp",
        action="append",
        default=[],
        metavar="FEATURE=VALUE",
        help="set a feature's activation, e.g. 123=0.5, 77=0 or 123=3x (3 times its top activation)",
    )
    p.add_argument("--top", type=int, default=10, help="features to list (default %(default)s)")
    p.add_argument("-k", type=int, default=5, help="nearest texts to list (default %(default)s)")
    a = p.parse_args(argv)
    from .search import check_counts, embed_query, encode, nearest_texts, open_run, parse_clamps, steer, strongest

    check_counts(**{"--top": a.top, "-k": a.k})
    from .search import check_has_model, check_query  # the store's own line named the Python API's fix

    check_query(a.query)  # before the run loads
    run = open_run(a.run_dir)
    why = "no model embeds a query like them; search it from Python with embeddings (Run.encode_embeddings)"
    check_has_model(run, a.run_dir, why)
    clamp = parse_clamps(a.clamp, run)
    # Everything is computed before the first line is printed, so whatever the model's libraries
    # write while loading never lands between results.
    x = embed_query(run.query_encoder, a.query, run.normalize)  # once: the features and the nearest texts share it
    hits = strongest(encode(run.sae, x)[0].cpu().numpy(), a.top, run.labels, run.verdicts)
    shown = [("nearest texts:", nearest_texts(run.store, x, a.k))]
    if clamp:
        shown.append(
            (
                "nearest texts after " + ", ".join(f"#{f}={v:.4g}" for f, v in clamp.items()) + ":",
                nearest_texts(run.store, steer(run.sae, x, clamp), a.k),
            )
        )
    from .run_schema import verdict_note

    print(f"query: {printable(a.query)}\nfeatures it activates:")
    for f in hits.itertuples():
        print(f"  #{f.feature_id:<6} {f.activation:8.4f}  {printable(f.label)}{verdict_note(f.label, f.verdict)}")
    for title, texts in shown:
        print(title)
        for t in texts.itertuples():
            print(f"  {t.cos:.3f}  [{printable(t.domain)}] {printable(t.text)}")


search = plain_command(_search)
search.__doc__ = "sae-search: the features a query activates; steer it by clamping features, see the nearest texts."
