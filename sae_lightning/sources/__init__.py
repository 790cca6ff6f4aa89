"""Where texts come from. Each source has `load() -> TextCorpus`; `NpyEmbeddings` skips the model."""
from .corpus import SourceError, TextCorpus
from .npy import NpyEmbeddings, load_npy
from .tables import HFDataset, TextFiles
from .wiki import WIKI_TOPICS, WikiVitalArticles

__all__ = ["SourceError", "TextCorpus", "NpyEmbeddings", "load_npy", "HFDataset", "TextFiles",
           "WikiVitalArticles", "WIKI_TOPICS"]
