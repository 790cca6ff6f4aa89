"""Where the Hydra configs are, and a check that they are all there and readable.

conf/ lives at the top of the repository; a wheel ships the same files inside the package as
sae_lightning/conf (pyproject.toml maps the package sae_lightning.conf onto conf/)."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from .errors import UserError

_PACKAGE = Path(__file__).resolve().parent
REINSTALL = "reinstall sae-lightning (pip install --force-reinstall sae-lightning, or the wheel) or restore the file"


def find_conf_dir() -> Path:
    """A source checkout or an editable install: the repo's conf/ beside the package (the files a
    user edits, preferred when present). An installed wheel: the copy inside the package."""
    checkout = _PACKAGE.parent
    if (checkout / "conf" / "config.yaml").is_file() and (checkout / "pyproject.toml").is_file():
        return checkout / "conf"
    return _PACKAGE / "conf"


def command_defaults(command: str) -> dict:
    """The option defaults of a plain command (sae-diff, sae-compare, sae-serve): conf/<command>.yaml,
    their one home. The flags, the library's settings classes and the docs all read this file;
    validate.py holds each option's range (`<command>.<option>`)."""
    with open(find_conf_dir() / f"{command}.yaml", encoding="utf-8") as fh:
        return yaml.load(fh, Loader=_loader())


def add_default_flags(parser, command: str) -> dict:
    """One flag per setting of conf/<command>.yaml (`--min-log-odds` for min_log_odds), typed,
    defaulted and explained from there (its line's comment: --help said only the default, so what
    --threshold or --min-share mean was in the file alone); returns the defaults, whose names the
    caller reads back from the args."""
    defaults = command_defaults(command)
    text = (find_conf_dir() / f"{command}.yaml").read_text(encoding="utf-8")
    meaning = dict(re.findall(r"^(\w+):[^#\n]*#\s*(.+?)\s*$", text, flags=re.M))
    for name, default in defaults.items():
        parser.add_argument(
            f"--{name.replace('_', '-')}",
            type=type(default),
            default=default,
            help=f"{meaning.get(name, '')} (default {default}; conf/{command}.yaml)".lstrip().replace("%", "%%"),
        )
    return defaults


def _loader() -> type:
    return getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _named_by_defaults(path: Path, conf_dir: Path, raw: dict) -> list[Path]:
    """The config files a defaults list names: `- _base` beside this file, `- group: option` in
    conf/group/ (from a top-level file). Overrides, optional entries, Hydra's own groups (plugins
    provide them) and the files under conf/hydra/, null and interpolated choices are Hydra's to
    resolve; a schema is no file (it is in Hydra's ConfigStore, sae_lightning/schemas)."""
    from .schemas import SCHEMA_PREFIX

    if path.relative_to(conf_dir).parts[0] == "hydra":  # Hydra's groups: its own options (hydra.conf) complete them
        return []
    named = []
    for entry in raw.get("defaults") or []:
        if isinstance(entry, str) and entry != "_self_" and "${" not in entry and not entry.startswith(SCHEMA_PREFIX):
            named.append((conf_dir if path.parent == conf_dir else path.parent) / f"{entry}.yaml")
        elif isinstance(entry, dict) and path.parent == conf_dir:
            for group, option in entry.items():
                if (
                    isinstance(option, str)
                    and "${" not in option
                    and not group.startswith(("override", "optional"))
                    and group.lstrip("/").split("/")[0] != "hydra"
                    and (conf_dir / group).is_dir()
                ):
                    named.append(conf_dir / group / f"{option}.yaml")
    return named


def check_conf_files(conf_dir: Path) -> None:
    """One line naming the file when a config is missing or unreadable (Hydra's own message is a
    multi-line traceback that does not say which file of an installed package broke)."""
    if not (conf_dir / "config.yaml").is_file():
        raise UserError(
            f"{conf_dir / 'config.yaml'} is missing: the configs of sae-lightning are not installed; {REINSTALL}"
        )
    for path in sorted(conf_dir.rglob("*.yaml")):
        try:
            raw = yaml.load(path.read_text(encoding="utf-8"), Loader=_loader())
        except (yaml.YAMLError, UnicodeDecodeError) as err:
            where = getattr(err, "problem_mark", None)
            line = f" at line {where.line + 1}" if where is not None else ""
            raise UserError(f"{path}: corrupt YAML{line}; {REINSTALL}") from None
        if raw is not None and not isinstance(raw, dict):
            raise UserError(f"{path}: expected a mapping of settings, got {type(raw).__name__}; {REINSTALL}")
        for named in _named_by_defaults(path, conf_dir, raw or {}):
            if not named.is_file():
                raise UserError(f"{named} is missing (named in the defaults of {path}); {REINSTALL}")
