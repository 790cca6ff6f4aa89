"""Sparse SAE codes as a retrieval index, against the dense embeddings they were trained on
(docs/application/retrieval.md; run_study.sh writes its output to docs/application/generated/).

    retrieval.py <run> [n_queries]

The run's own validation split gives the queries (sentences the SAE never trained on); the index is
its training split. A hit is a sentence of the query's own Wikipedia article (ids are `Title#n`),
so the task has a ground truth that neither method was built for. Each method ranks the index by
cosine: the dense MiniLM embedding x, the SAE code z (k of d_sae features nonzero), and z cut to its
8 strongest features. A few queries are shown with their top named features and, for the best
sparse hit, the shared features that put it there.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tables import md_table  # noqa: E402  (docs/study/tables.py)

from sae_lightning import Run  # noqa: E402
from sae_lightning.data.datamodule import split_indices  # noqa: E402

K = 10  # recall@K, precision@K
SHORT = 8  # features kept in the truncated sparse code
SEED = 0
EXAMPLES = ("Mathematics", "History", "Biology and health sciences")  # one example query from each


def sparse_codes(run: Run, x: np.ndarray, keep: int | None = None, batch: int = 4096) -> sp.csr_matrix:
    """Row-normalised SAE codes as a CSR matrix, optionally only each row's `keep` largest entries."""
    blocks = []
    for i in range(0, len(x), batch):
        z = run.encode_embeddings(x[i : i + batch])
        if keep is not None:
            z[z < -np.partition(-z, keep - 1, axis=1)[:, keep - 1 : keep]] = 0.0
        z /= np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)
        blocks.append(sp.csr_matrix(z))
    return sp.vstack(blocks).tocsr()


def top_k(scores: np.ndarray, k: int = K) -> np.ndarray:
    """Indices of each row's k largest scores, best first."""
    part = np.argpartition(-scores, k, axis=1)[:, :k]
    return np.take_along_axis(part, np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1), axis=1)


def dense(m) -> np.ndarray:
    return m.toarray() if sp.issparse(m) else np.asarray(m)


def evaluate(
    ranked: dict[str, np.ndarray],
    q_article: np.ndarray,
    q_domain: np.ndarray,
    ix_article: np.ndarray,
    ix_domain: np.ndarray,
    n_rel: np.ndarray,
) -> pd.DataFrame:
    """recall@K of same-article sentences, same-domain precision@K, overlap with the dense top K."""
    rows = []
    for name, top in ranked.items():
        same_article = ix_article[top] == q_article[:, None]
        rows.append(
            {
                "index": name,
                f"recall@{K}, same article": (same_article.sum(1) / np.minimum(n_rel, K)).mean(),
                f"hit@{K}, same article": same_article.any(1).mean(),
                f"precision@{K}, same domain": (ix_domain[top] == q_domain[:, None]).mean(),
                f"overlap with dense top {K}": np.mean(
                    [len(set(a) & set(b)) / K for a, b in zip(top, ranked["dense MiniLM x"])]
                ),
            }
        )
    return pd.DataFrame(rows)


def why_near(run: Run, zq: np.ndarray, zd: np.ndarray, n: int = 3) -> str:
    """The shared features contributing most to the sparse cosine of a query and a hit."""
    contrib = zq * zd
    ids = [i for i in np.argsort(-contrib)[:n] if contrib[i] > 0]
    share = contrib[ids].sum() / max(contrib.sum(), 1e-12)
    return ", ".join(f"#{i} *{run.labels[i] or '(no label)'}*" for i in ids) + f" ({share:.0%} of the cosine)"


def main(run_dir: str, n_queries: int = 1000) -> str:
    run = Run.load(run_dir)
    info = json.loads((Path(run_dir) / "run.json").read_text())
    meta = run.store.metadata()
    x = np.asarray(run.store.embeddings, dtype=np.float32)
    train, val = split_indices(len(x), float(info["val_fraction"]), int(info["seed"]))
    article = meta["id"].astype(str).str.rsplit("#", n=1).str[0].to_numpy()
    domain = meta["domain"].astype(str).to_numpy()
    counts = pd.Series(article[train]).value_counts()
    val = val[counts.reindex(article[val]).fillna(0).to_numpy() > 0]  # queries whose article is in the index
    queries = np.sort(np.random.default_rng(SEED).choice(val, size=min(n_queries, len(val)), replace=False))

    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    codes = {
        "dense MiniLM x": (xn[queries], xn[train]),
        f"sparse SAE code z ({run.sae.cfg.k} of {run.d_sae})": (
            sparse_codes(run, x[queries]),
            sparse_codes(run, x[train]),
        ),
        f"z, {SHORT} strongest features": (sparse_codes(run, x[queries], SHORT), sparse_codes(run, x[train], SHORT)),
    }
    ranked = {name: top_k(dense(q @ ix.T)) for name, (q, ix) in codes.items()}
    table = evaluate(
        ranked,
        article[queries],
        domain[queries],
        article[train],
        domain[train],
        counts.reindex(article[queries]).to_numpy(),
    )
    nnz = {name: (ix.nnz / ix.shape[0] if sp.issparse(ix) else ix.shape[1]) for name, (_, ix) in codes.items()}
    table.insert(
        1,
        "stored numbers per text",
        [f"{nnz[n]:.0f}" if n == "dense MiniLM x" else f"{nnz[n]:.0f} (id, value) pairs" for n in table["index"]],
    )

    out = [
        f"{len(queries)} held-out sentences as queries (the run's validation split, seed {SEED}), "
        f"{len(train)} training sentences as the index; a hit is a sentence of the query's own article.\n",
        md_table(table.map(lambda v: f"{v:.3f}" if isinstance(v, float) else v)),
        "",
    ]
    sparse_name = list(codes)[1]
    zq_all, zi_all = codes[sparse_name]
    for dom in EXAMPLES:
        pick = next((i for i, q in enumerate(queries) if domain[q] == dom), None)
        if pick is None:
            continue
        q = queries[pick]
        feats = run.top_features(meta["text"].iloc[q], k=4)
        best = ranked[sparse_name][pick][0]
        out.append(
            f"**Query ({dom}):** {meta['text'].iloc[q]}\n\n"
            "- top features: "
            + ", ".join(f"#{r.feature_id} *{r.label or '(no label)'}* {r.activation:.2f}" for r in feats.itertuples())
            + "\n"
            f"- best sparse hit ({'same' if article[train][best] == article[q] else 'another'} article, "
            f"{article[train][best]}): {meta['text'].iloc[train[best]]}\n"
            f"- near because of: {why_near(run, dense(zq_all[pick])[0], dense(zi_all[best])[0])}\n"
        )
    return "\n".join(out)


if __name__ == "__main__":
    print(main(sys.argv[1], *(int(a) for a in sys.argv[2:])))
