"""sae-compare: which features the SAEs of several domains share and which one domain has.

    from sae_lightning.compare import compare_runs, write_comparison
    result = compare_runs(["outputs/train/multiruns/2025-01-01_12-00-00"])   # a sweep dir, or run dirs
    write_comparison(result, "compare-out")   # matches, feature_classes (.parquet/.csv), compare.html

Files, in the order data flows: load.py (find finished run dirs, read decoders, labels, shares),
match.py (one-to-one matching and presence by decoder cosine), analysis.py (classes, groups,
overlap, joint-SAE domain counts: a ComparisonResult), page.py + templates/ (compare.html),
write.py (everything on disk), cli.py (the sae-compare command). Analysis never imports rendering:
page.py and write.py import it.
"""

from .analysis import DEFAULT_THRESHOLD, ComparisonResult, compare_runs
from .write import default_compare_dir, summary, write_comparison

__all__ = [
    "DEFAULT_THRESHOLD",
    "ComparisonResult",
    "compare_runs",
    "default_compare_dir",
    "summary",
    "write_comparison",
]
