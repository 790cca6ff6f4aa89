"""What a knob is: a dataclass field holding its default, its type (the annotation), its one-line
meaning (`doc`) and the rule its values must pass (`rule`: a range or choices). `knob(...)` builds
the field; everything else reads the metadata: the Hydra schema node (`defaults_of`), the checks of
a composed config (validate.py) and of a config built in Python (`check_fields`), and the docs'
config reference. Torch-free: the commands check their config before torch may be imported."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import MISSING, Field, dataclass, field, fields
from typing import Any

from ..errors import UserError


@dataclass(frozen=True)
class Rule:
    what: str  # what a valid value is, as the error message says it
    ok: Callable[[Any], bool]
    null: bool = False  # null allowed
    example: str | None = None  # shown when the value is missing (???)

    def accepts(self, value: Any) -> bool:
        return self.null if value is None else self.ok(value)


def is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def is_num(v: Any) -> bool:
    return (isinstance(v, (int, float)) and not isinstance(v, bool)) and math.isfinite(v)


def _or_null(what: str, null: bool) -> str:
    return f"{what}, or null" if null else what


def whole(lo: int | None = None, hi: int | None = None, null: bool = False) -> Rule:
    bounds = (f" from {lo} to {hi}" if hi is not None else f" >= {lo}") if lo is not None else ""
    return Rule(
        _or_null(f"a whole number{bounds}", null),
        lambda v: is_int(v) and (lo is None or v >= lo) and (hi is None or v <= hi),
        null,
    )


def number(
    lo: float | None = None, hi: float | None = None, lo_open: bool = False, hi_open: bool = False, null: bool = False
) -> Rule:
    parts = [
        f"{'>' if lo_open else '>='} {lo}" if lo is not None else "",
        f"{'<' if hi_open else '<='} {hi}" if hi is not None else "",
    ]
    bounds = " and ".join(p for p in parts if p)

    def ok(v: Any) -> bool:
        return (
            is_num(v)
            and (lo is None or (v > lo if lo_open else v >= lo))
            and (hi is None or (v < hi if hi_open else v <= hi))
        )

    return Rule(_or_null(f"a finite number{' ' + bounds if bounds else ''}", null), ok, null)


def flag(null: bool = False, also: tuple[str, ...] = ()) -> Rule:
    extra = "".join(f" or {a}" for a in also)
    return Rule(_or_null(f"true or false{extra}", null), lambda v: isinstance(v, bool) or v in also, null)


def one_of(*choices: str, null: bool = False) -> Rule:
    return Rule(_or_null("one of " + " | ".join(choices), null), lambda v: v in choices, null)


def text(null: bool = False, example: str | None = None) -> Rule:
    # Hydra reads `name=2024` as an int; a name made of digits is still a name.
    return Rule(
        _or_null("a non-empty string", null),
        lambda v: isinstance(v, (str, int, float)) and not isinstance(v, bool) and str(v).strip() != "",
        null,
        example,
    )


def folder_name(null: bool = False) -> Rule:
    # A name that becomes one folder under the outputs: no path separators, never hidden or `..`,
    # and never led by a dash, which every shell tool then reads as an option (`ls outputs/-x`).
    return Rule(
        _or_null("a plain folder name (letters, digits, _ - . ; starting with a letter, digit or _)", null),
        lambda v: (
            isinstance(v, (str, int))
            and not isinstance(v, bool)
            and re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}", str(v)) is not None
        ),
        null,
    )


def list_of(item: Rule, what: str, check: Callable[[list], bool] = lambda v: True, null: bool = False) -> Rule:
    return Rule(
        _or_null(what, null), lambda v: isinstance(v, list) and all(item.accepts(x) for x in v) and check(v), null
    )


POSITIVE = whole(1)
# Threads, worker processes or CPU training processes (trainer.devices): more than any machine's
# cores only contend for them, and runtime.torch_threads=100000 ran out of memory starting them.
MAX_THREADS = 1024


def threads(lo: int = 1, null: bool = False) -> Rule:
    return whole(lo, MAX_THREADS, null)


SEED = whole(0, 2**32 - 1)
# Top texts the scan keeps per feature (labeling.m, families.texts_per_member: it keeps the larger):
# at most 1,000, since it holds d_sae x m rows and activations at once (m = 10^6 asked 12 GB at d_sae 3072).
TOP_TEXTS = whole(1, 1000)


def knob(default: Any, doc: str, rule: Rule) -> Any:
    """A dataclass field that is a knob of the config: its default, meaning and rule in one place.
    A list default is copied per instance (dataclasses refuse a shared mutable default)."""
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata={"doc": doc, "rule": rule})
    return field(default=default, metadata={"doc": doc, "rule": rule})  # MISSING: required (??? in the node)


def section(cls: type, doc: str) -> Any:
    """A field holding a nested group of knobs: one callback of `callbacks`, a logger's `settings`."""
    return field(default_factory=cls, metadata={"doc": doc, "section": cls})


def knob_paths(cls: type, prefix: str = "", filled: bool = False) -> list[tuple[str, Field]]:
    """(dotted path, field) of every knob of a schema, its sections' too (`wandb.settings.silent`);
    filled: also the values code fills (an SAE's d_in)."""
    out: list[tuple[str, Field]] = []
    for f in fields(cls):
        if "section" in f.metadata:
            out += knob_paths(f.metadata["section"], f"{prefix}{f.name}.", filled)
        elif "rule" in f.metadata and (filled or not f.metadata.get("filled")):
            out.append((prefix + f.name, f))
    return out


def checked_fields(cls: type) -> list[Field]:
    """The fields of a schema that have a rule: its knobs and the values code fills (an SAE's d_in)."""
    return [f for f in fields(cls) if "rule" in f.metadata]


def knob_fields(cls: type) -> list[Field]:
    """The fields of a schema that are knobs of its config group."""
    return [f for f in checked_fields(cls) if not f.metadata.get("filled")]


def default_of(f: Field) -> Any:
    if f.default_factory is not MISSING:
        return f.default_factory()
    return "???" if f.default is MISSING else f.default


def defaults_of(cls: type) -> dict[str, Any]:
    """The schema as the node Hydra composes: every knob at its default (??? where it has none),
    sections nested, and `_target_` first where the schema names the class Hydra builds (TARGET)."""
    node: dict[str, Any] = {"_target_": cls.TARGET} if getattr(cls, "TARGET", None) else {}
    for f in fields(cls):
        if "section" in f.metadata:
            node[f.name] = defaults_of(f.metadata["section"])
        elif "rule" in f.metadata and not f.metadata.get("filled"):
            node[f.name] = default_of(f)
    return node


def clipped(text: str, most: int = 80) -> str:
    """A value of any length cut for a one-line message (a pasted file, a list of thousands)."""
    return text if len(text) <= most else text[:most] + "..."


def shown(value: Any) -> str:
    """A value as the user wrote it on the command line."""
    return "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)


def _reads_as_another_type(value: Any) -> bool:
    """A string that unquoted would be a number, a boolean or null: it was quoted ('512', "true")."""
    if not isinstance(value, str):
        return False
    try:
        float(value)
        return True
    except ValueError:
        return value.strip().lower() in ("true", "false", "null")


def invalid(key: str, value: Any, rule: Rule) -> str:
    """The one line for a value its rule refuses (the same for a command line and for Python). A
    quoted number was shown bare ('data.batch_size=512 is invalid ... a whole number'): it is quoted."""
    if _reads_as_another_type(value):
        return f"{key}='{value}' is invalid: quoted, it is a string; set {key} to {rule.what}, unquoted"
    return f"{key}={clipped(shown(value))} is invalid; set {key} to {rule.what}"


def required(key: str, rule: Rule | None) -> str:
    """The one line for a knob left at ??? (the same for a command line and for a node built in Python)."""
    example = rule.example if rule and rule.example else "..."
    return f"{key} is required: pass {key}={example}"


def check_fields(obj: Any, group: str) -> None:
    """Check a schema instance built in Python by the rules a composed config is checked with."""
    for f in checked_fields(type(obj)):
        value = getattr(obj, f.name)
        if not f.metadata["rule"].accepts(list(value) if isinstance(value, tuple) else value):
            raise UserError(invalid(f"{group}.{f.name}", value, f.metadata["rule"]))


def from_node(cls: type, raw: Any) -> Any:
    """A schema instance from a composed node (a DictConfig, resolved) or a dict (run.json's copy);
    keys that are not fields of `cls` are left out (`_target_`, which names the class Hydra builds)."""
    from omegaconf import DictConfig, OmegaConf
    from omegaconf.errors import MissingMandatoryValue

    rules = {f.name: f.metadata.get("rule") for f in fields(cls)}
    try:
        values = (
            OmegaConf.to_container(raw, resolve=True, throw_on_missing=True)
            if isinstance(raw, DictConfig)
            else dict(raw or {})
        )
    except MissingMandatoryValue as err:  # a ??? no command line filled (sae-diff's groups are not validated)
        raise UserError(required(err.full_key, rules.get(str(err.key)))) from None
    names = set(rules)
    return cls(**{k: v for k, v in values.items() if k in names})
