"""What a command imports before it has work to do (start-up is mostly imports). A
behaviour check of the import graph, not a timing: each command's --help, sae-embed's path to a
cached store and the labelling load none of the heavy libraries they do not use. The times
themselves are benchmarks/bench_startup.py's."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

HEAVY = ("torch", "pytorch_lightning", "transformers", "sentence_transformers", "keybert", "wandb")
ENTRY_POINTS = {  # as pyproject.toml's [project.scripts] names them
    "sae-train": "sae_lightning.cli:train",
    "sae-embed": "sae_lightning.cli:embed",
    "sae-label": "sae_lightning.cli:label",
    "sae-compare": "sae_lightning.compare.cli:main",
    "sae-search": "sae_lightning.cli:search",
    "sae-diff": "sae_lightning.diff.cli:main",
    "sae-export": "sae_lightning.export.sentence_transformers:main",
}
LOADED = """
import contextlib, io, json, sys
{code}
print(json.dumps(sorted(m for m in {heavy!r} if m in sys.modules)))
"""


def loaded_after(code: str, env: dict | None = None) -> tuple[list[str], str]:
    """The HEAVY modules a fresh interpreter holds after running `code`, and what it printed before."""
    res = subprocess.run(
        [sys.executable, "-c", LOADED.format(code=code, heavy=HEAVY)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    *before, last = res.stdout.splitlines()
    return json.loads(last), "\n".join(before)


@pytest.mark.parametrize("command", ENTRY_POINTS)
def test_help_loads_no_torch_lightning_or_models(command):
    module, func = ENTRY_POINTS[command].split(":")
    heavy, _ = loaded_after(
        f"sys.argv = [{command!r}, '--help']\nfrom {module} import {func}\n"
        f"with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):\n"
        f"    {func}()"
    )
    assert heavy == []


def test_embed_and_label_stages_load_no_lightning():
    """sae-embed reaches a cached store, and sae-label a finished run, without Lightning (nor, for
    sae-embed, the embedding model's libraries: a cache hit loads no model)."""
    heavy, _ = loaded_after("import sae_lightning.cli\nfrom sae_lightning.data.embed import build_store_from_cfg")
    assert "pytorch_lightning" not in heavy and "transformers" not in heavy
    heavy, _ = loaded_after("import sae_lightning.label_run, sae_lightning.report")
    assert "pytorch_lightning" not in heavy


def test_wandb_offline_notice_is_dropped_when_transformers_loads_it():
    """transformers prints a notice on stdout when its W&B integration is imported offline: the
    commands' hook drops it at that moment, without importing transformers itself."""
    env = {**os.environ, "WANDB_MODE": "offline"}
    load = "import transformers.integrations.integration_utils"
    _, printed = loaded_after(load, env)
    assert "WANDB offline" in printed  # the notice this guards against (else the check below says nothing)
    heavy, printed = loaded_after(
        f"from sae_lightning.quiet import drop_wandb_offline_notice\n"
        f"drop_wandb_offline_notice()\nassert 'transformers' not in sys.modules\n{load}",
        env,
    )
    assert printed == "" and "transformers" in heavy


def test_the_embedding_model_loads_without_scikit_learn_or_scipy_optimize_and_embeds_the_same():
    """sentence-transformers imports scikit-learn (with scipy.stats and pandas), and transformers'
    loss modules scipy.optimize, for helpers that embedding never calls: under the commands' hook
    the model loads and embeds without them, to the same vectors as in this process (which loaded
    it the ordinary way), and each helper is the library's own at its first call."""
    import numpy as np

    from sae_lightning.data.embed import load_model

    query = "the fall of the Roman empire"
    heavy, printed = loaded_after(
        "from sae_lightning.lean_imports import defer_heavy_helpers\ndefer_heavy_helpers()\n"
        "from sae_lightning.data.embed import load_model\n"
        f"print('embedding:', load_model().encode([{query!r}])[0].tolist())\n"
        "assert 'transformers.loss.loss_utils' in sys.modules  # the module the scipy hook runs\n"
        "deferred = ('sklearn', 'scipy.stats', 'scipy.optimize')\n"
        "assert not [m for m in deferred if m in sys.modules], [m for m in deferred if m in sys.modules]\n"
        "import numpy as np\nfrom sentence_transformers.util.similarity import pairwise_distances\n"
        "from sklearn.metrics import pairwise_distances as own\n"
        "assert (pairwise_distances(np.eye(3)) == own(np.eye(3))).all()\n"
        "from transformers.loss.loss_for_object_detection import linear_sum_assignment\n"
        "from scipy.optimize import linear_sum_assignment as scipys\n"
        "cost = np.array([[4.0, 1.0, 3.0], [2.0, 0.0, 5.0], [3.0, 2.0, 2.0]])\n"
        "assert all((a == b).all() for a, b in zip(linear_sum_assignment(cost), scipys(cost)))"
    )
    assert "sentence_transformers" in heavy
    vector = next(line for line in printed.splitlines() if line.startswith("embedding: ")).removeprefix("embedding: ")
    np.testing.assert_allclose(json.loads(vector), load_model().encode([query])[0], rtol=0, atol=1e-6)


def test_search_on_the_default_model_loads_neither_transformers_nor_sentence_transformers(wiki_topk_run):
    """sae-search embeds its query with the lean encoder (data/lean_encoder.py) and prints the same
    features as the API, which here runs in a process that also holds sentence-transformers."""
    from sae_lightning.api import Run

    query = "prime numbers and divisibility"
    heavy, printed = loaded_after(
        f"sys.argv = ['sae-search', {str(wiki_topk_run)!r}, {query!r}, '--top', '3', '-k', '1']\n"
        "from sae_lightning.cli import search\nsearch()"
    )
    assert "torch" in heavy and "transformers" not in heavy and "sentence_transformers" not in heavy
    shown = [line.split()[0] for line in printed.splitlines() if line.startswith("  #")]
    assert shown == [f"#{f}" for f in Run.load(wiki_topk_run).top_features(query, 3)["feature_id"]]
