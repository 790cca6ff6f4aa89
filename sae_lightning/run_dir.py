"""The run folder's owner: its file names, its readers and writers. Nothing else spells the name
of a file of a run; docs/reference/run-folder.md describes the same layout.

    <run>/run.json           which store, split, architecture and stages the run has (RunDir.run_info)
    <run>/checkpoints/       last.ckpt (resume) and the newest epoch checkpoint
    <run>/sae/               cfg.json, sae_weights.safetensors, sparsity.safetensors (SAELens layout)
    <run>/metrics.json       {"metrics", "timings_s", "units"} of training, written once at export
    <run>/labelings/<id>/    one labelling each (labeling.py): features.parquet, families.parquet,
                             labels.json (its settings, summary, timings), report.html, summary.md
    <run>/current            link to labelings/<id>: which labelling is the run's, switched in one
                             rename (labeling_pointer.py)
    <run>/labeling.json      {"current": "<id>"} (a link through current/)
    <run>/diff/<a>-vs-<b>/   sae-diff's tables and page (diff/write.py)
    <run>/features.parquet   ... and the other files of the current labelling: links through
                             current/ for people and tools that open <run>/report.html; our own
                             readers resolve the current labelling through RunDir.labeling()

The atomic writers live in atomic.py; import them from there."""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import shutil
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

from . import labeling_pointer as pointer
from .atomic import creating, gone, move_into_place, read_json, write_json
from .errors import UserError
from .labeling import Labeling, relabel_fix
from .path_checks import check_readable, entries_besides, some_of
from .run_schema import SAE_CFG_FILE, SAE_WEIGHTS_FILE, SPARSITY_FILE, metrics_file

__all__ = ["OUTPUTS_ENV", "Labeling", "RunDir", "outputs_root"]

# A labelling is written into its run: a run folder that cannot be written (another user's, a
# read-only mount) was a PermissionError traceback, after the command had made its log folder.
READ_ONLY_FIX = "a labelling is written into its run: copy the run where you can write (cp -a) and label the copy"

OUTPUTS_ENV = "SAE_LIGHTNING_OUTPUTS"
# What Hydra writes into a command's log folder before the command starts: its log, the composed config.
HYDRA_LOG_FILES = (".hydra", "cli.log")


def outputs_root() -> str:
    """The root of all run folders, paths.log_dir's default (the `outputs_root` resolver):
    $SAE_LIGHTNING_OUTPUTS, else outputs (relative to where a command runs). Empty counts as unset."""
    return os.environ.get(OUTPUTS_ENV) or "outputs"


class RunDir:
    """One run's folder. Nothing else spells the names of its files."""

    RUN, METRICS, SAE, CHECKPOINTS, LAST = "run.json", "metrics.json", "sae", "checkpoints", "last.ckpt"
    SAE_CFG, SAE_WEIGHTS, SPARSITY = SAE_CFG_FILE, SAE_WEIGHTS_FILE, SPARSITY_FILE
    LABELINGS, CURRENT, HYDRA_CONFIG, DIFF = pointer.LABELINGS, Labeling.POINTER, ".hydra/config.yaml", "diff"
    LOCK = ".lock"  # in labelings/: one labelling of a run at a time
    FINISHED = (f"{SAE}/{SAE_CFG}", f"{SAE}/{SAE_WEIGHTS}", METRICS)  # what training leaves, metrics.json last

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.claimed = False  # set by claim: this process made the folder a new run's

    def __truediv__(self, name: str) -> Path:
        return self.root / name

    def __str__(self) -> str:
        return str(self.root)

    @property
    def sae(self) -> Path:
        return self.root / self.SAE

    @property
    def checkpoints(self) -> Path:
        return self.root / self.CHECKPOINTS

    @property
    def last_ckpt(self) -> Path:
        return self.checkpoints / self.LAST

    @property
    def metrics_file(self) -> Path:
        return self.root / self.METRICS

    @property
    def run_file(self) -> Path:
        return self.root / self.RUN

    @property
    def hydra_config(self) -> Path:
        return self.root / self.HYDRA_CONFIG

    def diff_dir(self, name: str) -> Path:
        """Where `sae-diff` writes one comparison (`<a>-vs-<b>`, `matrix`)."""
        return self.root / self.DIFF / name

    def claim(self) -> None:
        """Make this folder a new run's, atomically: `checkpoints/` is created exclusively, so of
        two processes pointed at one folder exactly one goes on, and the other writes nothing."""
        self.check_not_inside_a_run()
        self.root.mkdir(parents=True, exist_ok=True)
        if self._run_files():
            raise self._taken()
        try:
            self.checkpoints.mkdir()
        except FileExistsError:
            raise self._taken() from None
        self.claimed = True

    def check_free(self, settings: str = "run_dir") -> None:
        """claim()'s refusal, before anything is written: sae-train checks the folder a new run was
        pointed at (run_dir=, hydra.run.dir=) before Hydra writes its .hydra/ and log into it
        (claim() stays the atomic check of two racing runs). A folder holding anything but what a
        failed start of a run left (Hydra's log files) is refused too: a folder of yours, or the
        current one, got the run's files mixed into its own."""
        if self.checkpoints.exists() or self._run_files():
            raise self._taken(settings)
        foreign = entries_besides(self.root, HYDRA_LOG_FILES)
        if foreign:
            raise UserError(
                f"{self.root} holds files that are not a run's ({some_of(foreign)}); a new run goes into a new "
                f"or empty folder: change {settings}"
            )

    def _run_files(self) -> list[str]:
        """What a run left here besides checkpoints/: a finished run copied (or pruned) without its
        checkpoints was trained over, its weights, metrics.json and run.json replaced."""
        return [name for name in (self.RUN, self.SAE, self.METRICS) if (self.root / name).exists()]

    def check_not_inside_a_run(self, settings: str = "run_dir") -> None:
        """A new run never goes inside another run's folder (run_dir=<run>/sae wrote a second run
        into the first one's sae/ and labelings/). A folder above counts as a run by run.json with
        sae/ or checkpoints/ beside it: a project folder with a checkpoints/ of its own is none."""
        for parent in self.root.absolute().parents:
            above = RunDir(parent)
            if above.run_file.is_file() and (above.sae.is_dir() or above.checkpoints.is_dir()):
                raise UserError(
                    f"{self.root} is inside the run {parent}, whose folder holds only its own files; "
                    f"change {settings} to a folder outside it"
                )

    def requeued_by_slurm(self) -> bool:
        """A SLURM job requeued by Lightning's auto-requeue (trainer=slurm) starts again in its folder."""
        return os.environ.get("SLURM_RESTART_COUNT", "0") != "0" and any(self.root.glob("hpc_ckpt_*.ckpt"))

    def holds_run(self) -> bool:
        """A run was started here (run.json or checkpoints/): its .hydra/ records how."""
        return self.run_file.is_file() or self.checkpoints.is_dir()

    def _taken(self, settings: str = "run_dir") -> UserError:
        new = "leave run_dir unset for a new folder" if settings == "run_dir" else f"change {settings}"
        if not self.checkpoints.exists():  # nothing to resume from
            return UserError(
                f"{self.root} already holds a run (it has {', '.join(self._run_files())}) and no "
                f"{self.CHECKPOINTS}/ to resume it from; {new}"
            )
        return UserError(
            f"{self.root} already holds a run (it has {self.CHECKPOINTS}/); resume it with "
            f"`sae-train run_dir={self.root} ckpt_path=last`, or {new}"
        )

    def has_export(self) -> bool:
        """The SAE and metrics.json are written (training ended and nothing of it can be lost). A
        metrics.json that cannot be read (a copy cut short) is no export: resuming from
        last.ckpt writes it again, which it would refuse as finished, while every reader failed on it."""
        if not (self.sae / self.SAE_CFG).is_file() or not self.metrics_file.is_file():
            return False
        try:
            self.metrics()
        except UserError:
            return False
        return True

    def check_readable(self) -> None:
        """Every file a reader of the finished run opens can be read by this user: run.json, sae/,
        metrics.json and the current labelling's files (through current/); one line otherwise."""
        names = (self.RUN, self.SAE, *self.FINISHED, f"{self.SAE}/{self.SPARSITY}", self.LABELINGS, pointer.LINK)
        check_readable(
            [self.root, *(self.root / n for n in (*names, *pointer.MIRRORED))],
            f"make the run readable to you (its owner can run chmod -R a+rX {self.root}) or read a copy of it",
        )

    def missing(self) -> list[str]:
        """What a finished run has that this folder lacks (run.json first); one line when this
        user cannot read it (is_file let the PermissionError through to sae-diff and sae-compare)."""
        self.check_readable()
        return [f for f in (self.RUN, *self.FINISHED) if not (self.root / f).is_file()]

    def finished_and_readable(self) -> bool:
        """A finished run this user can read: what a search for runs keeps (latest_run over a shared
        outputs folder holding another user's run failed on it with a PermissionError)."""
        try:
            return not self.missing()
        except UserError:
            return False

    def run_info(self) -> dict:
        return read_json(self.run_file, "it is written when a run starts; start the run again")

    def write_run_info(self, info: dict) -> Path:
        return write_json(self.run_file, info)

    # ---- metrics.json: training's numbers, written once -----------------------------------------
    def _metrics_json(self) -> dict:
        return read_json(self.metrics_file, f"resume the training with `sae-train run_dir={self.root} ckpt_path=last`")

    def metrics(self) -> dict:
        """metrics.json's "metrics" (fve, l0, dead_frac, ...)."""
        data = self._metrics_json()
        if not isinstance(data.get("metrics"), dict):
            raise UserError(
                f'{self.metrics_file} has no "metrics" section, so training did not write it; '
                f"resume the training with `sae-train run_dir={self.root} ckpt_path=last`"
            )
        return dict(data["metrics"])

    def timings(self) -> dict:
        """metrics.json's "timings_s": seconds of training."""
        return dict(self._metrics_json().get("timings_s") or {})

    def write_metrics(self, metrics: dict, timings_s: dict | None = None) -> Path:
        return write_json(self.metrics_file, metrics_file(metrics, timings_s or {}))

    def results(self, labeling: Labeling | None = None) -> dict:
        """One flat view for readers that show numbers (the report, sae-compare, the summary line):
        the training metrics, then the current labelling's (or `labeling`'s) summary (nothing of it
        when unlabelled)."""
        labeling = labeling or self.labeling()
        return {**self.metrics(), **(labeling.summary() if labeling else {})}

    # ---- labellings ------------------------------------------------------------------------------
    @property
    def current_file(self) -> Path:
        return self.root / self.CURRENT

    def labeling(self) -> Labeling | None:
        """The run's current labelling: the one `<run>/current` (or, in a copy that followed the
        link, labeling.json) names, a plain folder name inside labelings/ (else one line); None when
        the run is not labelled."""
        current = pointer.current_id(self.root)
        if current is None:
            pointer.check_not_cut(self.root)  # labelled once, its link gone: not "unlabelled"
            return None
        folder = self.root / self.LABELINGS / current
        if not folder.is_dir():
            raise UserError(
                f"the current labelling {current!r} of {self.root} is not under "
                f"{self.root / self.LABELINGS}; {relabel_fix(self.root)}"
            )
        return Labeling(folder, current)

    def labelings(self) -> list[Labeling]:
        """Every finished labelling of the run, oldest first (by labels.json's `created`). A folder
        without a readable labels.json (one made by hand, a copy cut short, one chmod 700 by another
        user) is none: it is skipped, not an error (its line said to label the run again, which left
        it as damaged as before; Path.is_file let the PermissionError through)."""
        folder = self.root / self.LABELINGS
        created: dict[Labeling, str] = {}
        for p in sorted(folder.iterdir()) if folder.is_dir() else []:
            lab = Labeling(p, p.name)
            # a link leads to another run's labelling; isfile is False on any OSError
            if p.name.startswith(".") or p.is_symlink() or not os.path.isfile(lab.labels_path):
                continue
            with contextlib.suppress(UserError):
                created[lab] = str(lab.info().get("created", ""))
        return sorted(created, key=lambda lab: (created[lab], lab.id))  # two in one second too

    @contextlib.contextmanager
    def new_labeling(self) -> Iterator[Labeling]:
        """`with run.new_labeling() as lab:` write lab's files; on leaving, `commit` makes it the
        current labelling, and anything raised (Ctrl-C included) removes it instead. Earlier
        labellings stay as they are either way. One labelling of a run at a time: a second one
        (another sae-label) is refused in one line while this one holds the run's lock."""
        with self._labeling_lock():
            pointer.check_link(self.root)  # before the work, not at its switch
            self._remove_abandoned()
            now = datetime.now(timezone.utc)
            labeling_id = f"{now:%Y-%m-%d_%H-%M-%S}_{secrets.token_hex(3)}"
            tmp = self.root / self.LABELINGS / f".{labeling_id}.{os.getpid()}.tmp"
            # the switch renames `current` in the run's own folder: one that takes no new entries
            # (labelings/ writable) was a traceback there, after the whole labelling, left not current
            probe = self.root / tmp.name
            with creating(probe, READ_ONLY_FIX):
                probe.mkdir()
            probe.rmdir()
            with creating(tmp, READ_ONLY_FIX):
                tmp.mkdir(parents=True)
            labeling = Labeling(tmp, labeling_id)
            labeling.created = now.isoformat(timespec="microseconds")
            try:
                yield labeling
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            self.commit(labeling)

    @contextlib.contextmanager
    def _labeling_lock(self) -> Iterator[None]:
        """flock on labelings/.lock: released by the kernel when the process ends, kill -9 included."""
        folder = self.root / self.LABELINGS
        with creating(folder, READ_ONLY_FIX):
            folder.mkdir(parents=True, exist_ok=True)
            fh = open(folder / self.LOCK, "a")  # closed by the with below
        with fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise UserError(
                    f"{self.root} is being labelled by another process (sae-label or sae-train); "
                    "wait for it to finish, then label it again if you still want to"
                ) from None
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _remove_abandoned(self) -> None:
        """Temp folders (and links) of labellings whose process is gone (killed): never current, so
        removable. One whose process still runs is left alone (the lock makes that rare)."""
        for tmp in [*(self.root / self.LABELINGS).glob(".*.tmp"), *self.root.glob(".*.tmp*")]:
            pid = tmp.name.split(".tmp")[0].rsplit(".", 1)[-1]
            if gone(pid):
                if tmp.is_dir() and not tmp.is_symlink():
                    shutil.rmtree(tmp, ignore_errors=True)
                else:
                    tmp.unlink(missing_ok=True)

    def commit(self, labeling: Labeling) -> Labeling:
        """Make a new labelling the run's current one: its folder, whole by then (tables,
        labels.json and, from sae-label and sae-train's end, report.html and summary.md), is renamed
        into place, then `<run>/current` switches to it in one rename, which switches labeling.json
        and every top-level file with it. A kill before the switch leaves the earlier labelling
        current and whole."""
        if not labeling.labels_path.is_file():
            raise ValueError(f"{labeling.folder} has no {Labeling.LABELS}: write it before commit")
        pointer.write_pointer(labeling)
        final = self.root / self.LABELINGS / labeling.id
        move_into_place(labeling.folder, final)  # a new id: nothing is there to be moved aside
        labeling.folder = final
        pointer.switch(self.root, labeling)
        return labeling

    def publish(self) -> None:
        """The top-level files show the current labelling through `<run>/current`; in a copy of the
        run that followed the links, this makes them links again."""
        pointer.mirror(self.root)
