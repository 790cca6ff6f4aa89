"""sae-compare: which features the SAEs of several domains share and which one domain has (the
command; the analysis is compare_runs, the files write_comparison). Flag defaults: conf/compare.yaml."""

from __future__ import annotations

import time
from pathlib import Path

from ..cli import plain_command
from ..command_parser import CommandParser
from ..conf_dir import add_default_flags
from ..path_checks import out_flag
from ..validate import check_settings


def _compare(argv: list[str]) -> None:
    # the analysis (torch) loads here, inside the command, after plain_command set up its imports
    from .analysis import compare_runs
    from .write import check_out, default_compare_dir, write_comparison

    p = CommandParser(
        prog="sae-compare",
        description="Match features across per-domain SAEs by decoder "
        "direction; per-domain feature counts of joint SAEs. Writes tables and compare.html.",
    )
    p.add_argument("paths", nargs="+", help="a sweep dir (Hydra multirun folder) or run dirs")
    p.add_argument("--out", type=out_flag, help="output folder (default: the sweep dir, else outputs/compare/<time>/)")
    defaults = add_default_flags(p, "compare")
    a = p.parse_args(argv)
    settings = {name: getattr(a, name) for name in defaults}
    check_settings("compare", settings, flags=True)  # the ranges are validate.py's rules
    if a.out:
        check_out(a.out)  # a file in its way, or a folder of yours, refused before the matching
    result = compare_runs(a.paths, **settings)
    sweep = result.settings.get("sweep_dir")
    out = Path(a.out) if a.out else Path(sweep) if sweep else default_compare_dir(time.strftime("%Y-%m-%d_%H-%M-%S"))
    files = write_comparison(result, out)
    counts = result.class_counts()
    for name in result.names if len(counts.columns) else []:
        print(f"{name}: " + ", ".join(f"{c} {int(counts.loc[name, c])}" for c in counts.columns))
    for j in result.joint:
        print(
            f"{j.run} (joint), features per domain (main/active/specific): "
            + ", ".join(f"{r.domain} {r.n_main}/{r.n_active}/{r.n_specific}" for r in j.counts.itertuples())
        )
    print(f"page: {files['compare.html']}\ntables: {files['matches.parquet']}, {files['feature_classes.parquet']}")


main = plain_command(_compare)
main.__doc__ = "sae-compare: which features the domains' SAEs share and which one domain has."
