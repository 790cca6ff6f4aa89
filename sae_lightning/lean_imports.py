"""What an entry point does so that loading the embedding model imports less (sae-search's
start-up is mostly imports).

Two third-party modules import a heavy library at their top level for one helper that embedding
texts never calls:

- `sentence_transformers.util.similarity` imports scikit-learn for `pairwise_distances`, a helper
  of its similarity functions. scikit-learn brings scipy.stats, pandas' and narwhals' set-up with
  it: about a third of `import sentence_transformers`.
- transformers' loss modules (imported by `transformers.loss.loss_utils`, which every model's
  base class imports) import scipy.optimize for `linear_sum_assignment`, the Hungarian matching of
  object-detection losses: about 0.3 s of loading the model on 2 cores.

`defer_heavy_helpers()` runs each such module's top level with stand-in modules whose helper
imports the real library at its first call and calls it (benchmarks/RESULTS.md, the start-up
section). Outside those top levels nothing changes: sys.modules holds no stand-in afterwards, so
every other import of scikit-learn or scipy (KeyBERT's, the labelling's) is the ordinary one, and
the model, its weights and its embeddings are untouched."""

from __future__ import annotations

import importlib
import sys
import types
from collections.abc import Callable

from .import_hooks import WrappedLoader, wrap_exec

# The module whose top level is run with stand-ins -> {stand-in module: the names it offers}.
# A stand-in module listed with no names is a package of the ones under it.
DEFERRED = {
    "sentence_transformers.util.similarity": {"sklearn": (), "sklearn.metrics": ("pairwise_distances",)},
    "transformers.loss.loss_utils": {"scipy.optimize": ("linear_sum_assignment",)},
}


def _on_first_call(module: str, name: str) -> Callable:
    """`module.name`, imported at the first call (by then the stand-ins are gone)."""

    def call(*args, **kwargs):
        return getattr(importlib.import_module(module), name)(*args, **kwargs)

    call.__name__ = call.__qualname__ = name
    return call


def _stand_ins(offered: dict[str, tuple[str, ...]]) -> dict[str, types.ModuleType]:
    out = {}
    for module, names in offered.items():
        out[module] = stand_in = types.ModuleType(module)
        for name in names:
            setattr(stand_in, name, _on_first_call(module, name))
        if not names:
            stand_in.__path__ = []
    for module, stand_in in out.items():  # a package stand-in holds its sub-modules' stand-ins
        parent, _, child = module.rpartition(".")
        if parent in out:
            setattr(out[parent], child, stand_in)
    return out


def _drop(stand_ins: dict[str, types.ModuleType]) -> None:
    for name, stand_in in stand_ins.items():
        if sys.modules.get(name) is stand_in:
            del sys.modules[name]


def _deferring(offered: dict[str, tuple[str, ...]]) -> type[WrappedLoader]:
    class _OnFirstCall(WrappedLoader):
        def exec_module(self, module) -> None:
            if any(name in sys.modules for name in offered):  # imported already: nothing left to save
                self.loader.exec_module(module)
                return
            stand_ins = _stand_ins(offered)
            sys.modules.update(stand_ins)
            try:
                self.loader.exec_module(module)
            except ImportError:
                # A release that wants more of the library at its top than the stand-ins offer:
                # drop them and import the real one, slower but right.
                _drop(stand_ins)
                self.loader.exec_module(module)
            finally:
                _drop(stand_ins)

    return _OnFirstCall


def defer_heavy_helpers() -> None:
    """scikit-learn and scipy.optimize are imported when the embedding model's libraries first call
    them, not when they load."""
    for module, offered in DEFERRED.items():
        wrap_exec(module, _deferring(offered))
