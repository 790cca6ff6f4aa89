"""What every text source is and produces: a class built from its typed config, chunks of
(id, text, domain) rows, or all of them as one `TextCorpus`; and the clean-up and sampling all
sources share."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from ...errors import UserError

log = logging.getLogger(__name__)


class SourceError(UserError):
    """Bad input from a text source: the message names the problem and the fix."""


class Source:
    """A source receives its schema's typed config (`config_class`, schemas/domain.py), which
    checked every knob by the CLI's rules when it was built; the source checks only what needs
    the files or the data."""

    config_class: ClassVar[type]

    def __init__(self, cfg: Any) -> None:
        if not isinstance(cfg, self.config_class):
            raise SourceError(f"{type(self).__name__} takes a {self.config_class.__name__}, not {type(cfg).__name__}")
        self.cfg = cfg


@dataclass
class TextChunk:
    """A run of consecutive rows of a source (raw: texts may be empty or not strings)."""

    ids: list
    texts: list
    domains: list

    def __len__(self) -> int:
        return len(self.texts)

    def take(self, keep) -> TextChunk:
        return TextChunk([self.ids[i] for i in keep], [self.texts[i] for i in keep], [self.domains[i] for i in keep])


class ContentHash:
    """sha256 of ids, texts and domains in order, fed chunk by chunk: the store fingerprint keys on
    content, so an edited file or a changed sampling never reuses a stale store."""

    def __init__(self) -> None:
        self._h = hashlib.sha256()

    def update(self, chunk: TextChunk) -> None:
        for i, t, d in zip(chunk.ids, chunk.texts, chunk.domains):
            self._h.update(i.encode())
            self._h.update(b"\x1f")
            self._h.update(t.encode())
            self._h.update(b"\x1f")
            self._h.update(d.encode())
            self._h.update(b"\x1e")

    def hexdigest(self) -> str:
        return self._h.hexdigest()


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
        h = ContentHash()
        h.update(TextChunk(self.ids, self.texts, self.domains))
        return h.hexdigest()


def clean(chunk: TextChunk) -> tuple[TextChunk, int]:
    """The chunk without empty or whitespace-only texts (stripped, all fields as str), and how many
    were dropped."""
    keep = [i for i, t in enumerate(chunk.texts) if isinstance(t, str) and t.strip()]
    kept = TextChunk(
        [str(chunk.ids[i]) for i in keep], [chunk.texts[i].strip() for i in keep], [str(chunk.domains[i]) for i in keep]
    )
    return kept, len(chunk) - len(keep)


def sample_indices(codes: np.ndarray, names: list[str], limit: int, seed: int) -> np.ndarray:
    """Rows to keep (sorted) for at most `limit` texts spread evenly over domains, so a small run
    still covers every domain. `codes[i]` is row i's domain as an index into `names`.
    Deterministic for a seed."""
    rng = np.random.default_rng(seed)
    order = sorted(range(len(names)), key=lambda c: names[c])
    by_domain = {c: rng.permutation(np.flatnonzero(codes == c)) for c in order}
    # Round-robin quota: each domain gets an equal share, unused share flows to larger domains.
    quota = dict.fromkeys(order, 0)
    left = limit
    while left > 0:
        open_ = [c for c in order if quota[c] < len(by_domain[c])]
        share = max(1, left // len(open_))
        for c in open_:
            take = min(share, len(by_domain[c]) - quota[c], left)
            quota[c] += take
            left -= take
            if left == 0:
                break
    return np.sort(np.concatenate([by_domain[c][: quota[c]] for c in order]))
