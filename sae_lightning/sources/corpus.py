"""The in-memory form every text source produces, and the clean-up all of them share."""
from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field

import numpy as np

from ..errors import UserError

log = logging.getLogger(__name__)


class SourceError(UserError):
    """Bad input from a text source: the message names the problem and the fix."""


@dataclass
class TextCorpus:
    ids: list[str]
    texts: list[str]
    domains: list[str]
    skipped_empty: int = 0
    description: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not (len(self.ids) == len(self.texts) == len(self.domains)):
            raise SourceError("ids, texts and domains must have the same length")

    def __len__(self) -> int:
        return len(self.texts)

    def content_hash(self) -> str:
        """Hash of ids, texts and domains in order: the store fingerprint keys on content, so an
        edited file or a changed sampling never reuses a stale store."""
        h = hashlib.sha256()
        for i, t, d in zip(self.ids, self.texts, self.domains):
            h.update(i.encode())
            h.update(b"\x1f")
            h.update(t.encode())
            h.update(b"\x1f")
            h.update(d.encode())
            h.update(b"\x1e")
        return h.hexdigest()


def drop_empty(ids: list[str], texts: list, domains: list[str], where: str) -> TextCorpus:
    """Skip empty or whitespace-only texts (counted and logged); fail if nothing is left."""
    keep = [i for i, t in enumerate(texts) if isinstance(t, str) and t.strip()]
    skipped = len(texts) - len(keep)
    if not texts:
        raise SourceError(f"{where}: holds no texts; point the source at a non-empty file or dataset")
    if not keep:
        raise SourceError(f"{where}: all {len(texts)} texts are empty or whitespace; point the source at a column with text")
    if skipped:
        log.warning("%s: skipped %d empty or whitespace-only texts", where, skipped)
    return TextCorpus(
        ids=[str(ids[i]) for i in keep],
        texts=[texts[i].strip() for i in keep],
        domains=[str(domains[i]) for i in keep],
        skipped_empty=skipped,
    )


def check_limit(limit: int | None) -> None:
    if limit is not None and int(limit) <= 0:
        raise SourceError(f"domain.limit={limit} must be a positive number of texts, or null for all")


def sample_per_domain(corpus: TextCorpus, limit: int | None, seed: int) -> TextCorpus:
    """Keep at most `limit` texts, spread evenly over domains so a small run still covers every
    domain. Deterministic for a seed; keeps the corpus order of the rows it keeps."""
    check_limit(limit)
    if limit is None or limit >= len(corpus):
        return corpus
    rng = np.random.default_rng(seed)
    domains = np.asarray(corpus.domains)
    names = sorted(set(corpus.domains))
    by_domain = {d: rng.permutation(np.flatnonzero(domains == d)) for d in names}
    # Round-robin quota: each domain gets an equal share, unused share flows to larger domains.
    quota = dict.fromkeys(names, 0)
    left = limit
    while left > 0:
        open_ = [d for d in names if quota[d] < len(by_domain[d])]
        share = max(1, left // len(open_))
        for d in open_:
            take = min(share, len(by_domain[d]) - quota[d], left)
            quota[d] += take
            left -= take
            if left == 0:
                break
    keep = np.sort(np.concatenate([by_domain[d][: quota[d]] for d in names]))
    return TextCorpus(
        ids=[corpus.ids[i] for i in keep],
        texts=[corpus.texts[i] for i in keep],
        domains=[corpus.domains[i] for i in keep],
        skipped_empty=corpus.skipped_empty,
        description=corpus.description,
    )
