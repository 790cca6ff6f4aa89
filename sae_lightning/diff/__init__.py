"""sae-diff: what differs between groups of texts (e.g. knowledge domains), in a run's features.

    res = diff_groups("outputs/train/runs/wiki_all/<time>", "Mathematics", "History")
    res.top("Mathematics")           # separating features firing more in Mathematics
    write_diff(res)                  # <run>/diff/Mathematics-vs-History/: diff.parquet/.csv, diff.html
    write_matrix(domain_matrix(run)) # <run>/diff/matrix/: every pair of the run's domains

The names load on first use, so that `sae-diff --help` (diff/cli.py) loads no torch or scipy.
"""

from ..lazy import lazy_names

_HOMES = {
    **dict.fromkeys(
        ["DiffResult", "DiffSettings", "MatrixResult", "diff_groups", "diff_table", "domain_matrix"], "analysis"
    ),
    **dict.fromkeys(["write_diff", "write_matrix"], "write"),
}
__all__ = list(_HOMES)
__getattr__, __dir__ = lazy_names(__name__, _HOMES)
