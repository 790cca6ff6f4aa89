"""Which source document each store text comes from, so that evidence is counted per document.

Several top texts of a feature are often sentences of one article; its entities would then pass
any "recurs in >= 2 top texts" rule although only one document holds them. The Wikipedia source
writes sentence ids as `<article title>#<sentence number>` (data/sources/wiki.py), so the document is
the id up to its last '#'. Other sources give no id structure that can be relied on: there every
text is its own document (the rules then count texts, as before)."""

from __future__ import annotations

import numpy as np

SENTENCE_SEPARATOR = "#"


def document_codes(ids: np.ndarray) -> np.ndarray:
    """[n] int64 document code per text id: equal codes = same source document."""
    ids = np.asarray(ids).astype(str)
    if len(ids) and all(SENTENCE_SEPARATOR in i for i in ids):
        docs = np.array([i.rsplit(SENTENCE_SEPARATOR, 1)[0] for i in ids])
    else:
        docs = ids
    return np.unique(docs, return_inverse=True)[1].astype(np.int64)


def first_per_document(rows: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """rows [F, m] store rows, best first (-1 padding) -> same shape, keeping only each feature's
    first (most activating) text of every document; the others become -1, order kept."""
    out = np.full_like(rows, -1)
    for f, r in enumerate(rows):
        valid = r[r >= 0]
        _, first = np.unique(codes[valid], return_index=True)
        keep = valid[np.sort(first)]
        out[f, : len(keep)] = keep
    return out
