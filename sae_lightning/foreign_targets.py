"""The classes of other libraries that a config builds (Lightning's Trainer and callbacks, W&B's
settings, a callback added with `+callbacks.<name>._target_=...`): what they take is read from their
signatures, so a misspelt or missing argument is one line before any work instead of Hydra's
InstantiationException traceback after the store step. A class is imported only when the command
line reaches it (a `+` argument, a `_target_` of its own)."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Iterator
from typing import Any

from omegaconf import DictConfig


def locate(target: str) -> Any:
    """The object a dotted `_target_` names (Hydra's get_object logs three lines on stderr for one
    that does not import, before its own exception). Raises ImportError naming the first part missing."""
    parts = target.split(".")
    for end in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:end]))
        except ImportError:
            if end == 1:
                raise
            continue
        for name in parts[end:]:
            if not hasattr(obj, name):
                raise ImportError(f"{'.'.join(parts[:end])} has no {name}")
            obj = getattr(obj, name)
        return obj
    raise ImportError(f"no module named {target!r}")


def arguments_of(target: str) -> set[str] | None:
    """The keyword arguments `target` takes, or None where it cannot be told (it takes **kwargs that
    go to another library, or does not import: instantiating it says so). Ours pass their **kwargs on
    to their Lightning base. Imported only for a `+` argument of another library's class."""
    try:
        obj = locate(target)
    except Exception:  # noqa: BLE001 - any import failure: added_object_problem names it
        return None
    # the class's own signature first (a pydantic model's fields), then, where one of ours passes
    # **kwargs on, its bases' up to the first that takes no **kwargs
    bases = [c.__init__ for c in obj.__mro__[1:] if "__init__" in vars(c)] if isinstance(obj, type) else []
    names: set[str] = set()
    for call in [obj, *bases]:
        params = inspect.signature(call).parameters.values()
        names |= {p.name for p in params if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            return names
        if not call.__module__.startswith("sae_lightning."):
            return None
    return None


def _added(node: DictConfig, prefix: str = "") -> Iterator[tuple[str, DictConfig]]:
    """(dotted key, node) of every node holding a `_target_`, outside Hydra's own."""
    for name in node.keys():
        key = f"{prefix}{name}"
        child = node._get_node(name)
        if key != "hydra" and isinstance(child, DictConfig) and not child._is_none():
            if "_target_" in child:
                yield key, child
            yield from _added(child, key + ".")


def added_object_problem(cfg: DictConfig, known: frozenset[str]) -> str | None:
    """The one line for an object added on the command line that cannot be built: its `_target_`
    does not import (Hydra's 'Error locating target' traceback), or an argument it requires is not
    given (`+callbacks.early._target_=...EarlyStopping` without `monitor`: a TypeError traceback)."""
    for key, node in _added(cfg):
        target = str(node.get("_target_"))
        if target in known:
            continue
        try:
            obj = locate(target)
        except Exception as err:  # noqa: BLE001 - any import failure is the user's _target_
            first = str(err).splitlines()[0] if str(err) else type(err).__name__
            return f"{key}._target_={target} cannot be imported ({first}); check its spelling"
        try:
            params = inspect.signature(obj).parameters.values()
        except (TypeError, ValueError):
            continue
        needed = [
            p.name for p in params if p.default is p.empty and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        ]
        missing = [name for name in needed if name not in node]
        if missing:
            return f"{key} ({target}) needs {', '.join(missing)}: add +{key}.{missing[0]}=..."
    return None
