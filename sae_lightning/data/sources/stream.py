"""Sources read in chunks: what lets the embedding stage hold one chunk of texts at a time.

A source subclasses `StreamedSource` and yields raw chunks from `raw_chunks`; `stream()` drops empty
texts, applies the config's `limit` (spread evenly over domains) and hashes the rows as they pass. With a limit
the source is read twice: once for the domain of every row (small integers, not texts), once for
the rows kept."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import numpy as np

from .corpus import ContentHash, Source, SourceError, TextChunk, TextCorpus, clean, sample_indices

log = logging.getLogger(__name__)

CHUNK_ROWS = 4096


class CorpusStream:
    """Iterate for clean chunks; after a full iteration `count`, `skipped_empty`, `domains` and
    `content_hash` describe every row that was yielded (the hash equals `TextCorpus.content_hash`)."""

    def __init__(self, source: StreamedSource, chunk_rows: int = CHUNK_ROWS) -> None:
        self.source, self.chunk_rows = source, int(chunk_rows)
        self.count = self.skipped_empty = 0
        self.domains: set[str] = set()
        self.content_hash: str | None = None

    def _keep_mask(self) -> np.ndarray | None:
        limit = self.source.cfg.limit
        if limit is None:
            return None
        codes, names = [], {}
        for raw in self.source.raw_chunks(self.chunk_rows):
            chunk, _ = clean(raw)
            codes.extend(names.setdefault(d, len(names)) for d in chunk.domains)
        if int(limit) >= len(codes):
            return None
        mask = np.zeros(len(codes), bool)
        mask[sample_indices(np.asarray(codes, np.int32), list(names), int(limit), self.source.cfg.seed)] = True
        return mask

    def __iter__(self) -> Iterator[TextChunk]:
        mask = self._keep_mask()
        hasher, raw_rows, position = ContentHash(), 0, 0
        self.count = self.skipped_empty = 0
        self.domains = set()
        for raw in self.source.raw_chunks(self.chunk_rows):
            raw_rows += len(raw)
            chunk, skipped = clean(raw)
            self.skipped_empty += skipped
            if mask is not None:
                keep = np.flatnonzero(mask[position : position + len(chunk)])
                position += len(chunk)
                chunk = chunk.take(keep)
            if len(chunk):
                hasher.update(chunk)
                self.count += len(chunk)
                self.domains.update(chunk.domains)
                yield chunk
        where = self.source.where()
        if raw_rows == 0:
            raise SourceError(f"{where}: holds no texts; point the source at a non-empty file or dataset")
        if self.count == 0:
            raise SourceError(
                f"{where}: all {raw_rows} texts are empty or whitespace; point the source at a column with text"
            )
        if self.skipped_empty:
            log.warning("%s: skipped %d empty or whitespace-only texts", where, self.skipped_empty)
        self.content_hash = hasher.hexdigest()


class StreamedSource(Source):
    """Base of the text sources: `raw_chunks`, `where` and `description` are theirs; their config's
    `limit` and `seed` select texts."""

    def raw_chunks(self, chunk_rows: int) -> Iterator[TextChunk]:
        raise NotImplementedError

    def where(self) -> str:
        raise NotImplementedError

    def description(self) -> dict:
        raise NotImplementedError

    def stream(self, chunk_rows: int = CHUNK_ROWS) -> CorpusStream:
        return CorpusStream(self, chunk_rows)

    def load(self) -> TextCorpus:
        """Every text in memory at once: for small corpora and callers that need random access."""
        stream = self.stream()
        ids, texts, domains = [], [], []
        for chunk in stream:
            ids += chunk.ids
            texts += chunk.texts
            domains += chunk.domains
        return TextCorpus(ids, texts, domains, skipped_empty=stream.skipped_empty, description=self.description())
