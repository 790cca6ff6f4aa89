"""The one pass over the store after training (stream.py): per-feature top examples, firing
counts, domain mass and co-firing pairs, in memory that does not grow with the number of texts.
Labels, scores and families all read its ScanResult; run_reader.py opens the finished run."""
