"""Where texts come from. Each text source streams chunks (`stream()`) or loads all (`load()`);
`NpyEmbeddings` skips the model."""
from .corpus import SourceError, TextChunk, TextCorpus
from .npy import NpyEmbeddings, load_npy
from .stream import CorpusStream, StreamedSource
from .tables import HFDataset, TextFiles
from .wiki import WIKI_TOPICS, WikiVitalArticles

__all__ = ["SourceError", "TextChunk", "TextCorpus", "CorpusStream", "StreamedSource", "NpyEmbeddings", "load_npy",
           "HFDataset", "TextFiles", "WikiVitalArticles", "WIKI_TOPICS"]
