"""What an entry point does so that loading the embedding model imports less (sae-search's
start-up is mostly imports).

sentence-transformers imports scikit-learn at its top, in `sentence_transformers.util.similarity`,
for one name: `pairwise_distances`, a helper of its similarity functions that embedding texts never
calls. scikit-learn brings scipy.stats, pandas' and narwhals' set-up with it: about a third of
`import sentence_transformers` (benchmarks/RESULTS.md, the start-up section). `defer_sklearn()` runs
that one module's top level with a `sklearn.metrics` whose `pairwise_distances` imports
scikit-learn's own at its first call and calls it. Outside that module's top level nothing changes:
sys.modules holds no stand-in afterwards, so every other import of scikit-learn (KeyBERT's, the
labelling's) is the ordinary one, and the model, its weights and its embeddings are untouched."""

from __future__ import annotations

import sys
import types

from .import_hooks import WrappedLoader, wrap_exec

SIMILARITY_MODULE = "sentence_transformers.util.similarity"


def _pairwise_distances(*args, **kwargs):
    """scikit-learn's pairwise_distances, imported at the first call."""
    from sklearn.metrics import pairwise_distances

    return pairwise_distances(*args, **kwargs)


class _SklearnOnFirstCall(WrappedLoader):
    def exec_module(self, module) -> None:
        if "sklearn" in sys.modules:  # imported already: nothing left to save
            self.loader.exec_module(module)
            return
        package, metrics = types.ModuleType("sklearn"), types.ModuleType("sklearn.metrics")
        package.__path__, package.metrics = [], metrics
        metrics.pairwise_distances = _pairwise_distances
        deferred = {"sklearn": package, "sklearn.metrics": metrics}
        sys.modules.update(deferred)
        try:
            self.loader.exec_module(module)
        except ImportError:
            # A sentence-transformers that wants more of scikit-learn at its top than this module
            # offers: drop the stand-ins and import the real one, slower but right.
            self._drop(deferred)
            self.loader.exec_module(module)
        finally:
            self._drop(deferred)

    @staticmethod
    def _drop(deferred: dict) -> None:
        for name, placeholder in deferred.items():
            if sys.modules.get(name) is placeholder:
                del sys.modules[name]


def defer_sklearn() -> None:
    """scikit-learn is imported when sentence-transformers first calls it, not when it loads."""
    wrap_exec(SIMILARITY_MODULE, _SklearnOnFirstCall)
