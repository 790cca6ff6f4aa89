"""Naming a feature: candidate keyphrases from its top texts (candidates.py, counts_cache.py),
KeyBERT's pick (keybert.py) reranked by TF-IDF evidence (evidence_rerank.py), the embeddings that
takes (phrase_cache.py, label_embedding.py), and the TF-IDF baseline names (tfidf_baseline.py)."""
