"""Where texts come from. Each text source streams chunks (`stream()`) or loads all (`load()`);
`NpyEmbeddings` skips the model.

The names load on first use: the commands check their config against WIKI_TOPICS before any work,
and that check should not pay for pandas, which only the table and .npy sources need."""

from ...lazy import lazy_names

_HOMES = {
    "SourceError": "corpus",
    "TextChunk": "corpus",
    "TextCorpus": "corpus",
    "NpyEmbeddings": "npy",
    "load_npy": "npy",
    "CorpusStream": "stream",
    "StreamedSource": "stream",
    "HFDataset": "tables",
    "TextFiles": "tables",
    "WIKI_TOPICS": "wiki",
    "WikiVitalArticles": "wiki",
}
__all__ = list(_HOMES)
__getattr__, __dir__ = lazy_names(__name__, _HOMES)
