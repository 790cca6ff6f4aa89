"""sae-lightning: sparse autoencoders on Sentence-BERT embeddings, features named by KeyBERT.

The Python API (sae_lightning/api.py), without Hydra:

    import sae_lightning as sl
    run = sl.Run.load("outputs/train/runs/wiki_all/<time>")    # or sl.latest_run()
    run.top_features("The theorem is proved by induction.", k=5)
    run = sl.train_sae(embeddings, sae={"d_sae": 512})

Names are imported on first use, so `import sae_lightning.cli` stays quick for the commands.
"""

from __future__ import annotations

__all__ = ["Feature", "Run", "UserError", "find_runs", "latest_run", "train_sae"]


def __getattr__(name: str):
    if name == "UserError":
        from .errors import UserError

        return UserError
    if name in __all__:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'sae_lightning' has no attribute {name!r}")
