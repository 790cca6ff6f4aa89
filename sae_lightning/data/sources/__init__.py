"""Where texts come from. Each text source receives its typed config (schemas/domain.py) and
streams chunks (`stream()`) or loads all (`load()`); `NpyEmbeddings` skips the model.
`build_source` builds the one a composed config's `domain` names.

The names load on first use: importing one source should not pay for pandas, which only the table
and .npy sources need."""

from ...lazy import lazy_names

_HOMES = {
    "build_source": "build",
    "Source": "corpus",
    "SourceError": "corpus",
    "TextChunk": "corpus",
    "TextCorpus": "corpus",
    "NpyEmbeddings": "npy",
    "load_npy": "npy",
    "CorpusStream": "stream",
    "StreamedSource": "stream",
    "HFDataset": "tables",
    "TextFiles": "tables",
    "WikiVitalArticles": "wiki",
}
__all__ = list(_HOMES)
__getattr__, __dir__ = lazy_names(__name__, _HOMES)
