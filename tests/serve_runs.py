"""Runs for sae-serve's tests: a copy of a finished run whose labelling and store carry hostile
text (markup that would run script if a page let it through), and a relabelling done the way
sae-label commits one (RunDir.new_labeling), to check that a server picks it up."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from sae_lightning.run_dir import Labeling, RunDir

# Each sets window.__xss if it ever runs; alert() would open a dialog the browser records.
HOSTILE_LABEL = "<script>window.__xss=1;alert(1)</script>"
HOSTILE_TEXT = '<img src=x onerror="window.__xss=2;alert(2)"> & "quotes"'
HOSTILE_KEYWORD = '<b onmouseover="window.__xss=3">bold</b>'
HOSTILE_FEATURE = 0


def _set(table: pa.Table, name: str, values) -> pa.Table:
    i = table.schema.get_field_index(name)
    return table.set_column(i, table.schema.field(i), pa.array(values, table.schema.field(i).type))


def rewrite_features(path: Path, change) -> None:
    """features.parquet with `change(columns: dict of lists)` applied, its schema kept."""
    table = pq.read_table(path)
    cols = {n: table.column(n).to_pylist() for n in table.column_names}
    change(cols)
    for name, values in cols.items():
        table = _set(table, name, values)
    pq.write_table(table, path)


def hostile_run(src: Path, dst: Path) -> Path:
    """A copy of run `src` (and of its store) with hostile strings in labels, keywords and texts."""
    shutil.copytree(src, dst)
    info = json.loads((dst / "run.json").read_text())
    store = dst.parent / f"{dst.name}-store"
    shutil.copytree(info["store_path"], store)
    info["store_path"] = str(store)
    (dst / "run.json").write_text(json.dumps(info, indent=2))
    meta = pq.read_table(store / "metadata.parquet")
    texts = meta.column("text").to_pylist()
    for row in range(0, len(texts), 7):  # one text in seven: some are near any query and fire any feature
        texts[row] = f"{HOSTILE_TEXT} {texts[row]}"
    pq.write_table(
        _set(meta, "text", texts),
        store / "metadata.parquet",
        row_group_size=max(1, pq.ParquetFile(store / "metadata.parquet").metadata.row_group(0).num_rows),
    )

    def poison(cols: dict) -> None:
        cols["label"][HOSTILE_FEATURE] = HOSTILE_LABEL
        cols["keywords"][HOSTILE_FEATURE] = [HOSTILE_KEYWORD, *(cols["keywords"][HOSTILE_FEATURE] or [])]
        cols["top_texts"] = [[f"{HOSTILE_TEXT} {t}" for t in (texts or [])] for texts in cols["top_texts"]]

    labeling = RunDir(dst).labeling()
    rewrite_features(labeling.features, poison)
    RunDir(dst).publish()
    return dst


def relabel(run: Path, feature: int, label: str) -> str:
    """A new labelling of the run, committed as sae-label commits one, with one label changed;
    returns its id."""
    folder = RunDir(run)
    current = folder.labeling()
    with folder.new_labeling() as lab:
        for name in Labeling.FILES:
            if (current.folder / name).is_file():
                shutil.copy2(current.folder / name, lab.folder / name)
        rewrite_features(lab.features, lambda cols: cols["label"].__setitem__(feature, label))
    return lab.id


def two_runs(src: Path, root: Path) -> tuple[Path, Path]:
    """The runs the sae-serve tests serve: `hostile` (hostile_run of src) and `twin` (a plain copy,
    whose features match src's one to one at cosine 1)."""
    hostile = hostile_run(src, root / "hostile")
    twin = root / "twin"
    shutil.copytree(src, twin)
    return hostile, twin
