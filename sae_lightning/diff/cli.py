"""sae-diff: rank a run's features by how differently they fire in two groups of texts, or (-m)
count the features separating every pair of the run's domains. Flag defaults: conf/diff.yaml."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..cli import plain_command
from ..command_parser import CommandParser
from ..conf_dir import add_default_flags
from ..path_checks import out_flag
from ..run_schema import verdict_note
from ..validate import check_settings

if TYPE_CHECKING:  # the analysis (torch, scipy) loads once the arguments are read: --help stays instant
    from .analysis import DiffResult, MatrixResult


def build_parser() -> CommandParser:
    p = CommandParser(
        prog="sae-diff",
        description="Which features of a finished run fire differently in "
        "two groups of texts (Fisher exact test, Benjamini-Hochberg), named by the run's labels.",
    )
    p.add_argument("run_dir", help="a finished run folder")
    p.add_argument(
        "groups",
        nargs="*",
        metavar="GROUP",
        help="two groups: a domain of the run's store (Mathematics), several comma-separated, "
        "or a domain config with overrides ('domain=files domain.path=x.csv')",
    )
    p.add_argument(
        "-m", "--matrix", action="store_true", help="every pair of the run's domains: a domain x domain matrix"
    )
    p.add_argument("--out", type=out_flag, help="output folder (default <run>/diff/<a>-vs-<b>/ or <run>/diff/matrix/)")
    add_default_flags(p, "diff")  # DiffSettings' fields, whose defaults conf/diff.yaml holds
    return p


def print_diff(res: DiffResult, n: int) -> None:
    s = res.summary()
    print(
        f"{res.a} ({res.n_a:,} texts) vs {res.b} ({res.n_b:,} texts): {s['separating']} of {s['features']} "
        f"features separate them ({s['more_in_a']} more in {res.a}, {s['more_in_b']} more in {res.b}; "
        f"Fisher exact, BH q<{res.settings.alpha}, |log-odds|>={res.settings.min_log_odds})"
    )
    for side in (res.a, res.b):
        print(f"more in {side}:")
        for r in res.top(side, n).itertuples():
            print(
                f"  #{r.feature_id:<5} {r.log_odds:+6.2f} [{r.log_odds_low:+.2f},{r.log_odds_high:+.2f}]  "
                f"{r.rate_a:6.1%} vs {r.rate_b:6.1%}  q={r.q_value:.1e}  {r.label}" + verdict_note(r.label, r.verdict)
            )


def print_matrix(res: MatrixResult) -> None:
    print(f"features separating each pair of domains ({len(res.domains)} domains):")
    for r in res.pairs.sort_values("separating", ascending=False).itertuples():
        print(f"  {r.separating:5d}  {r.a} vs {r.b}  ({r.more_in_a} / {r.more_in_b})")


def _main(argv: list[str]) -> None:
    p = build_parser()
    a = p.parse_args(argv)
    from dataclasses import fields

    from .analysis import DiffSettings, diff_groups, domain_matrix
    from .write import check_out, write_diff, write_matrix

    values = {f.name: getattr(a, f.name) for f in fields(DiffSettings)}
    check_settings("diff", values, flags=True)  # the ranges are validate.py's rules
    settings = DiffSettings(**values)
    check_out(a.out, a.matrix, a.run_dir)  # never replace a folder sae-diff did not write
    if a.matrix:
        if a.groups:
            p.error("-m compares every pair of the run's domains: give no groups")
        res = domain_matrix(a.run_dir, settings)
        files = write_matrix(res, a.out)
        print_matrix(res)
        print(f"page: {files['matrix.html']}\ntables: {files['matrix.parquet']}, {files['pairs.parquet']}")
        return
    if len(a.groups) != 2:
        p.error(f"give two groups (got {len(a.groups)}), or -m for every pair of domains")
    res = diff_groups(a.run_dir, a.groups[0], a.groups[1], settings)
    files = write_diff(res, a.out)
    print_diff(res, min(settings.top, 10))
    print(f"page: {files['diff.html']}\ntable: {files['diff.parquet']}, {files['diff.csv']}")


main = plain_command(_main)
main.__doc__ = "sae-diff: which features separate two groups of texts, named by the run's labels."
