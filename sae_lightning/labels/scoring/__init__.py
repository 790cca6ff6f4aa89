"""Scoring a name: held-out positives and negatives (scoring_sets.py), AUROC of the name's
embedding (auroc.py), keyword precision/recall (keyword_hits.py), a second model as judge
(judge.py), the coherence of the top texts (coherence.py) and the verdict (verdict.py)."""
