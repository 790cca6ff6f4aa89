"""Hydra glue shared by the commands: where the configs live, custom resolvers, the registration of
the typed schemas (sae_lightning/schemas), and a check of group choices that fails in one line
(Hydra's own message spans a screen)."""

from __future__ import annotations

import json
import netrc
import os
import re
import secrets
from pathlib import Path

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from .conf_dir import find_conf_dir
from .errors import UserError

CONF_DIR = find_conf_dir()  # the repo's conf/ in a checkout, sae_lightning/conf in a wheel


def wandb_logged_in() -> bool:
    """W&B goes online only for a user who has logged in; everyone else gets offline files."""
    if os.environ.get("WANDB_MODE") in ("offline", "disabled", "dryrun"):
        return False
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        hosts = netrc.netrc(os.environ.get("NETRC")).hosts
    except (OSError, netrc.NetrcParseError):
        return False
    return any("wandb" in host for host in hosts)


SLUG_MAX = 100  # characters of a name kept in a folder name (file systems allow 255 bytes)


def slug(value: object) -> str:
    """A folder-safe name: hub ids such as org/data set become org_data_set; never hidden (no
    leading dot, no `..`), never led by a dash (read as an option by shell tools) and never longer
    than SLUG_MAX."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(value)).lstrip("._-")[:SLUG_MAX].rstrip("_") or "run"


# This process's suffix for new run folders: two runs started in the same second (on one machine
# or on two sharing a file system) get two folders. One per process for the commands (Hydra
# resolves the run folder more than once); the API takes a new one per run (new_run_suffix).
RUN_SUFFIX = f"{os.getpid()}-{secrets.token_hex(2)}"


def new_run_suffix() -> None:
    """A fresh suffix for the next run folder of this process (train_sae, called twice a second)."""
    global RUN_SUFFIX
    RUN_SUFFIX = f"{os.getpid()}-{secrets.token_hex(2)}"


def register_hydra() -> None:
    """What every composition needs, once per process: the custom resolvers and the config schemas
    (sae_lightning/schemas) that conf/'s presets start from."""
    from .schemas import register

    register()
    resolvers = {
        "wandb_offline": lambda: not wandb_logged_in(),
        "slug": slug,
        "run_suffix": lambda: RUN_SUFFIX,
        "if_null": lambda value, default: default if value is None else value,
        # the run folders: Hydra takes a quoted '~/runs' literally (a folder named ~ in the current
        # folder), while the output checks and the store's cache expand it
        "expanduser": os.path.expanduser,
        # the defaults of paths.cache_dir and paths.log_dir, from the functions the plain commands
        # and the API use too (an empty variable counts as unset; oc.env would give "")
        "default_cache_dir": lambda: str(_default_cache_dir()),
        "outputs_root": _outputs_root,
    }
    for name, fn in resolvers.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn)


def _default_cache_dir():
    from .data.store import default_cache_dir

    return default_cache_dir()


def _outputs_root() -> str:
    from .run_dir import outputs_root

    return outputs_root()


def group_options(group: str) -> list[str]:
    """Selectable configs of a group (files starting with _ are shared bases, not choices)."""
    folder = CONF_DIR / group
    return sorted(p.stem for p in folder.glob("*.yaml") if not p.stem.startswith("_"))


def check_choices(overrides: list[str]) -> None:
    """Fail fast on `domain=unknown` (also inside multirun lists such as domain=a,b), listing the
    known options. Globs, interpolations and sweeps over ranges are left to Hydra."""
    for arg in overrides:
        m = re.fullmatch(r"([a-z_]+)=(.*)", arg)
        if not m or not (CONF_DIR / m.group(1)).is_dir():
            continue
        group, value = m.groups()
        if not value:
            raise UserError(f"{group}= names no {group}; pick one of {', '.join(group_options(group))}")
        if any(ch in value for ch in "()$*[]{}"):
            continue
        known = group_options(group)
        if "null" in value.split(","):  # Hydra's ValueError traceback ("Config group override must be a string")
            raise UserError(
                f"{group}={value} names no {group} (a config group cannot be null); "
                f"pick one of {', '.join(known)}, or leave {group}= out for its default"
            )
        unknown = [v for v in value.split(",") if v and v not in known]
        if unknown:
            raise UserError(f"unknown {group} {', '.join(unknown)}; known: {', '.join(known)}")


def compose_config(config_name: str, overrides: list[str], job_name: str = "app"):
    """The config the way Hydra will compose it (its `hydra` node included); Hydra's own
    composition errors (unknown key, bad override syntax) become one UserError line."""
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException, OverrideParseException
    from omegaconf.errors import OmegaConfBaseException

    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3", job_name=job_name):
            return compose(config_name=config_name, overrides=overrides, return_hydra_config=True)
    except (HydraException, OmegaConfBaseException) as err:
        # a character the grammar takes only quoted (ü, #, '): Hydra's line names a lexer class and a
        # URL, not the fix. A syntax error ([Arts) keeps Hydra's words: quoting would not fix it.
        if isinstance(err, OverrideParseException) and err.message.startswith("LexerNoViableAltException"):
            raise UserError(unreadable_override(err.override)) from None
        unknown = _not_a_setting(str(err), config_name, overrides, job_name)
        if unknown:
            raise UserError(unknown) from None
        # Hydra appends its search path to a missing-config message: noise for a user
        text = str(err).split("Config search path")[0]
        lines = [ln.strip().rstrip(".:") for ln in text.splitlines() if ln.strip()]
        cause = err.__cause__
        if isinstance(cause, OmegaConfBaseException) and str(cause).splitlines():
            lines.append(str(cause).splitlines()[0])
        raise UserError("; ".join(lines) or type(err).__name__) from None


def _not_a_setting(message: str, config_name: str, overrides: list[str], job_name: str) -> str | None:
    """Hydra refuses `sae.kk=3` (and `sae=jumprelu sae.k=4`) with 'use +sae.kk=3', which validate.py
    then refuses as no setting: the line a user gets is the second one, listing the group's settings.
    None where the `+` is the fix (an argument of a Lightning class, which Lightning checks)."""
    from .validate import unknown_key

    found = re.match(r"Could not override '([\w.]+)'", message)
    if not found or "To append to your config use +" not in message:
        return None
    key = found.group(1)
    try:
        cfg = compose_config(config_name, [o for o in overrides if o.split("=", 1)[0] != key], job_name)
    except UserError:
        return None
    return unknown_key(cfg, key)


def unreadable_override(override: str) -> str:
    """The line for an override Hydra's lexer cannot read: a value with a letter outside ASCII
    (Zürich), a `#` or a quote, which it takes only inside quotes."""
    key, _, value = override.partition("=")
    if any(c in value for c in "'\"$`\\"):  # the shell's quoting and Hydra's would nest: say how, not what
        example = f"{key}='<the value, with \\' for each '>', quoted for the shell too"
    else:
        example = f"\"{key}='{value}'\" on the command line"
    return (
        f"{override} cannot be read as a setting: Hydra takes such characters in a value only "
        f"inside quotes; quote it, e.g. {example}"
    )


TRAINING_ONLY = ("labeling.enabled", "labeling.every_n_epochs")  # labeling knobs sae-label has no use for


def compose_and_check(config_name: str, overrides: list[str]) -> str | None:
    """Compose the config the way Hydra will and check every value, before Hydra creates a run
    folder: a bad override then stops the command with nothing written. Returns the folder a
    single run will log into (None for a multirun)."""
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    from .validate import check_config

    cfg = compose_config(config_name, overrides)
    if config_name == "label" and (said := [a for a in overrides if a.split("=")[0].lstrip("+~") in TRAINING_ONLY]):
        raise UserError(  # accepted and ignored, `labeling.enabled=false` still labelled
            f"{said[0].lstrip('+~')}: whether and when to label is sae-train's setting; sae-label labels the run once, "
            "so leave it out"
        )
    if config_name == "embed" and cfg.get("train") is True:  # accepted and ignored: sae-embed trained nothing
        raise UserError("train=true: sae-embed only builds the embedding store; train with sae-train, so leave it out")
    # `${hydra:runtime.output_dir}` resolves only inside a Hydra job; a stand-in lets the values
    # built on it be checked (the folder itself is created by Hydra later, never here).
    # Values before folders: run_dir= (empty) meant the current folder, refused as holding files.
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = "<run folder>"
    hydra_cfg = HydraConfig.instance()
    previous, hydra_cfg.cfg = hydra_cfg.cfg, None
    try:
        hydra_cfg.set_config(cfg)
        check_config(cfg, skip=("hydra",))
    finally:
        hydra_cfg.cfg = previous
    run_folder, chosen_by = _run_folder(cfg)
    check_output_folders(cfg, run_folder, chosen_by)
    if run_folder is not None and "ckpt_path" in cfg and cfg.get("ckpt_path") is None and not _ddp_child():
        from .run_dir import RunDir

        run = RunDir(run_folder)
        if not run.requeued_by_slurm():  # a DDP rank > 0 or a requeue starts into its claimed folder
            run.check_free(chosen_by)  # an old run's folder, or one of yours: refused before Hydra writes
            run.check_not_inside_a_run(chosen_by)  # ... or into a folder inside an old one
    elif run_folder is not None and "ckpt_path" not in cfg and chosen_by == "hydra.run.dir":
        check_log_folder(run_folder)
    return run_folder


def _ddp_child() -> bool:
    """A DDP rank > 0, which Lightning starts by re-running the command."""
    return os.environ.get("LOCAL_RANK", "0") != "0"


def check_output_folders(cfg, run_folder: str | None, chosen_by: str) -> None:
    """The folders a command will create (its run folder, the store cache) can be created, and go
    into no run's folder and no store: sae-label's log (paths.log_dir=<a run>/logs), a run's folder
    in the cache's stores/ and the cache in a run were all taken."""
    from .output_places import check_cache_outside_runs, check_outside_runs_and_stores
    from .path_checks import check_output_folder

    if run_folder is not None:
        check_output_folder(run_folder, chosen_by)
        check_outside_runs_and_stores(run_folder, chosen_by)
    if OmegaConf.select(cfg, "paths.cache_dir", default=None) is not None:
        check_output_folder(cfg.paths.cache_dir, "paths.cache_dir")
        check_cache_outside_runs(cfg.paths.cache_dir)


def _run_folder(cfg) -> tuple[str | None, str]:
    """The folder Hydra will create for a single run, and the settings that choose it."""
    if str(OmegaConf.select(cfg, "hydra.mode")).endswith("MULTIRUN"):
        return None, ""  # each job's folder is checked by the job
    folder = str(OmegaConf.select(cfg, "hydra.run.dir"))
    if any(o.startswith("hydra.run.dir=") for o in OmegaConf.select(cfg, "hydra.overrides.hydra", default=[])):
        return folder, "hydra.run.dir"
    if folder == os.path.expanduser(str(cfg.get("run_dir"))):
        return folder, "run_dir"
    return folder, "paths.log_dir" + (", task_name or domain.name" if "task_name" in cfg else "")


# Set by a job before DDP starts its other ranks (see pipeline.export_job_for_ddp_children).
JOB_DIR_ENV, JOB_OVERRIDES_ENV = "SAE_LIGHTNING_JOB_DIR", "SAE_LIGHTNING_JOB_OVERRIDES"


def ddp_child_argv(argv: list[str]) -> list[str]:
    """Lightning starts DDP ranks > 0 by re-running this command with the parent's argv: inside a
    multirun that is the whole sweep (-m, comma lists), and its run dir is not the job's, so every
    rank would start sweeps of its own and write new folders. A child runs its job's overrides in
    its job's folder instead."""
    job_dir, overrides = os.environ.get(JOB_DIR_ENV), os.environ.get(JOB_OVERRIDES_ENV)
    if not job_dir or overrides is None or not _ddp_child():
        return argv
    keep = [a for a in argv if a.startswith(("hydra.job.name=", "hydra.output_subdir="))]
    job = [a for a in json.loads(overrides) if not a.startswith("run_dir=")]
    return [*job, f"run_dir={job_dir}", *keep]


def on_command_line(*keys: str) -> bool:
    """Whether this job's overrides set one of `keys` (`seed=1`, `+labeling.seed=1`)."""
    from hydra.core.hydra_config import HydraConfig

    return any(a.split("=", 1)[0].lstrip("+~") in keys for a in HydraConfig.get().overrides.task)


def check_log_folder(folder: str) -> None:
    """sae-label's hydra.run.dir holds only its log: a folder of yours got a cli.log, and the run
    it labels (hydra.run.dir=<run>) the relabel's lines appended to its training's cli.log. An
    earlier log folder (Hydra's files only) may be written again."""
    from .path_checks import entries_besides, some_of
    from .run_dir import HYDRA_LOG_FILES

    held = entries_besides(Path(folder), HYDRA_LOG_FILES)
    if held:
        raise UserError(
            f"hydra.run.dir={folder} holds {some_of(held)}, and this command writes only its log there; give it "
            "a new or empty folder, or leave hydra.run.dir out"
        )


def check_sweep_dir(argv: list[str]) -> None:
    """A multirun into a hydra.sweep.dir= that holds anything (an earlier sweep, a folder of yours):
    Hydra wrote its multirun.yaml there and each job's .hydra/ and log into the earlier job folder
    of its number (the record of how that run was made), before the job refused the folder. The
    default sweep folder is new (time, pid, random); a value built from ${...} is Hydra's to resolve."""
    given = [a.split("=", 1)[1] for a in argv if a.split("=", 1)[0].lstrip("+") == "hydra.sweep.dir" and "=" in a]
    if not given or "${" in given[-1]:
        return
    from .path_checks import entries_besides, some_of

    folder = Path(given[-1].strip("'\"")).expanduser()
    held = entries_besides(folder)
    if held:
        raise UserError(
            f"hydra.sweep.dir={folder} holds {some_of(held)}; a sweep goes into a new or empty folder: change "
            "hydra.sweep.dir"
        )


SWEEP_FUNCTIONS = ("range(", "choice(", "interval(", "glob(", "tag(", "shuffle(", "sort(")


def _sweeps(arg: str) -> bool:
    """Whether an override sweeps (`sae.k=2,3`, `seed=range(3)`): a comma outside brackets and quotes."""
    value = arg.partition("=")[2]
    if value.startswith(SWEEP_FUNCTIONS):
        return True
    depth, quote = 0, ""
    for c in value:
        if quote:
            quote = "" if c == quote else quote
        elif c in "'\"":
            quote = c
        elif c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif c == "," and depth == 0:
            return True
    return False


def check_sweep_folders(config_name: str, argv: list[str]) -> None:
    """A multirun's sweep folder and store cache, checked as a single run's folders are, before Hydra
    makes the sweep folder: a file in its place or /proc/x was a mkdir traceback, and paths.log_dir=
    <a run>/sweeps put the sweep folder (multirun.yaml, each job's .hydra/) inside that run, each job
    then refused naming run_dir. Composed without the swept overrides, which choose no folder here;
    a sweep whose fixed overrides do not compose is left to its jobs, which say why."""
    fixed = [a for a in argv if not a.startswith("-") and not _sweeps(a)]
    try:
        cfg = compose_config(config_name, fixed)
        folder = OmegaConf.select(cfg, "hydra.sweep.dir", throw_on_resolution_failure=True)
    except (UserError, OmegaConfBaseException):
        return
    given = any(a.split("=", 1)[0].lstrip("+") == "hydra.sweep.dir" for a in fixed)
    check_output_folders(cfg, str(folder), "hydra.sweep.dir" if given else "paths.log_dir or task_name")
