"""Files for other tools: a sentence-transformers SparseEncoder folder (sentence_transformers.py).
The SAELens folder every run has is written by models/saelens_files.py."""
