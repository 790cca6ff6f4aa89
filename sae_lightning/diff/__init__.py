"""sae-diff: what differs between groups of texts (e.g. knowledge domains), in a run's features.

    res = diff_groups("outputs/train/runs/wiki_all/<time>", "Mathematics", "History")
    res.top("Mathematics")           # separating features firing more in Mathematics
    write_diff(res)                  # <run>/diff/Mathematics-vs-History/: diff.parquet/.csv, diff.html
    write_matrix(domain_matrix(run)) # <run>/diff/matrix/: every pair of the run's domains
"""
from .analysis import DiffResult, DiffSettings, MatrixResult, diff_groups, diff_table, domain_matrix
from .write import write_diff, write_matrix

__all__ = ["DiffResult", "DiffSettings", "MatrixResult", "diff_groups", "diff_table", "domain_matrix",
           "write_diff", "write_matrix"]
