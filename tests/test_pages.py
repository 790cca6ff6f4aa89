"""The templated pages (report.html, compare.html, diff.html, matrix.html) on run data whose every
text field carries markup, quotes and ampersands: no run string may reach a page as markup, in
element content, in attributes or in the embedded JSON. And the package has no import cycle."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

import sae_lightning
from sae_lightning.compare import compare_runs, write_comparison
from sae_lightning.diff import DiffSettings, diff_table
from sae_lightning.diff.analysis import DiffResult, MatrixResult
from sae_lightning.diff.page import render_diff_page, render_matrix_page
from sae_lightning.report import write_report

from .html_checks import check_html
from .test_report import make_run

# A tag of our own (it can only appear if escaping failed), a quote that would end an attribute
# and start an event handler, and an ampersand that would start an entity.
EVIL = '<evil-tag x="1">&amp; "onmouseover="alert(1)" \'single\' </td></table></svg>'


def assert_no_injection(page: str) -> None:
    c = check_html(page)  # well-formed: a stray </td> or </svg> from a label would break this
    assert "<evil-tag" not in page
    for tag, attrs in c.tags:
        assert tag != "evil-tag" and "onmouseover" not in attrs, (tag, attrs)
    assert "&amp; " not in page.replace("&amp;amp; ", "")  # the ampersand of the data was escaped once more


def evil_run(root: Path, seed: int = 0) -> Path:
    """A finished run dir (test_report.make_run) whose every text field holds EVIL."""
    run = make_run(root, n=24, n_dead=3, seed=seed)
    df = pd.read_parquet(run / "features.parquet")
    live = ~df["dead"]
    for col in ("label", "label_reason", "tfidf_label", "main_domain"):
        df[col] = np.where(live, EVIL + col, df[col])
    df["keywords"] = [[EVIL, "kw"] for _ in range(len(df))]
    df["top_texts"] = [[EVIL + str(j) for j in range(len(t))] for t in df["top_texts"]]
    df["top_domains"] = [[EVIL] * len(t) for t in df["top_domains"]]
    df["domain_shares"] = [json.dumps({EVIL: 0.6, EVIL + "2": 0.4}) for _ in range(len(df))]
    df.to_parquet(run / "features.parquet")
    pd.DataFrame({"family_id": [0], "parent": [2], "children": [[4, 5]], "label": [EVIL]}).to_parquet(
        run / "families.parquet"
    )
    labels = json.loads((run / "labels.json").read_text())  # through the link: the current labelling's
    labels["labels"].update(judge_model=EVIL, **{EVIL: 1.0})
    (run / "labels.json").write_text(json.dumps(labels))
    cfg = json.loads((run / "sae" / "cfg.json").read_text())
    cfg.update(architecture=EVIL, metadata={"model_name": EVIL, "domains": [EVIL + str(seed)], "domain": EVIL})
    (run / "sae" / "cfg.json").write_text(json.dumps(cfg))
    (run / ".hydra" / "config.yaml").write_text(f"name: '{EVIL}'\n")
    (run / "run.json").write_text(json.dumps({"domain": EVIL}))
    return run


def test_every_report_text_field_is_escaped(tmp_path):
    run = evil_run(tmp_path)
    page = write_report(run).read_text(encoding="utf-8")
    assert_no_injection(page)
    data = page.split('<script type="application/json" id="report-data">')[1].split("</script>")[0]
    assert "<" not in data and json.loads(data)["label"][0].startswith(EVIL)  # intact once parsed
    for shown in ("&lt;evil-tag", "&#34;onmouseover=&#34;"):  # as text, in content and in attributes
        assert shown in page
    md = (run / "summary.md").read_text(encoding="utf-8")
    assert "<evil-tag" not in md and "&lt;evil-tag" in md


def test_every_compare_text_field_is_escaped(tmp_path):
    runs = [evil_run(tmp_path / str(seed), seed) for seed in (0, 1)]
    files = write_comparison(compare_runs(runs), tmp_path / "out")
    page = files["compare.html"].read_text(encoding="utf-8")
    assert_no_injection(page)
    assert "&lt;evil-tag" in page and 'id="shared"' in page


def test_every_diff_text_field_is_escaped(tmp_path):
    rng = np.random.default_rng(0)
    a, b = EVIL + "A", EVIL + "B"
    counts_a, counts_b = rng.integers(0, 10, 40), rng.integers(0, 10, 40)
    counts_a[:5], counts_b[5:10] = 150, 150  # planted separating features each way
    info = pd.DataFrame({"feature_id": range(40), "label": EVIL, "verdict": EVIL, "coherence": 0.3})
    table = diff_table(counts_a, 200, counts_b, 200, a, b, DiffSettings(), info)
    table["examples_a"] = [[EVIL]] * len(table)
    table["examples_b"] = [[EVIL * 3]] * len(table)  # long: cut with an ellipsis, still escaped
    res = DiffResult(tmp_path / EVIL, a, b, 200, 200, table, DiffSettings(), model_name=EVIL)
    page = render_diff_page(res)
    assert_no_injection(page)
    assert "<circle" in page and page.count("&lt;evil-tag") > 20
    doms = [EVIL, "plain"]
    matrix = MatrixResult(
        tmp_path, doms, [10, 20], np.array([[0, 3], [3, 0]]), np.array([[0, 1], [2, 0]]), DiffSettings()
    )
    assert_no_injection(render_matrix_page(matrix))


def _imports(path: Path, module: str) -> set[str]:
    """The sae_lightning modules `module` (at `path`) imports at module level or in functions."""
    pkg = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("sae_lightning")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg.split(".")
                base = ".".join(base[: len(base) - node.level + 1])
                name = f"{base}.{node.module}" if node.module else base
            else:
                name = node.module or ""
            if name.startswith("sae_lightning"):
                if node.module:  # `from . import x` needs only x, not the package's __init__
                    out.add(name)
                out |= {f"{name}.{a.name}" for a in node.names}  # `from pkg import module`
    return out


def test_no_import_cycle():
    """A static walk of every import inside the package (top-level and deferred ones alike: a
    deferred import only hides a cycle) finds no cycle between modules, and every module imports
    in a fresh interpreter."""
    root = Path(sae_lightning.__file__).parent
    modules = {}
    for path in root.rglob("*.py"):
        rel = path.relative_to(root.parent).with_suffix("")
        parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
        modules[".".join(parts)] = path
    graph = {m: {d for d in _imports(p, m) if d in modules and d != m} for m, p in modules.items()}
    # A package's __init__ importing its own submodules is the package exposing them, not a cycle.
    graph = {
        m: {d for d in deps if not (d.startswith(m + ".") and modules[m].name == "__init__.py")}
        for m, deps in graph.items()
    }
    state: dict[str, int] = {}

    def visit(m: str, stack: list[str]) -> None:
        state[m] = 1
        for d in sorted(graph[m]):
            if state.get(d) == 1:
                raise AssertionError("import cycle: " + " -> ".join(stack[stack.index(d) :] + [m, d]))
            if d not in state:
                visit(d, stack + [m])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [])
    importable = [m for m in sorted(modules) if not m.endswith("__main__") and ".conf" not in m]
    res = subprocess.run(
        [sys.executable, "-c", "import importlib, sys\nfor m in sys.argv[1:]: importlib.import_module(m)", *importable],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr[-2000:]
