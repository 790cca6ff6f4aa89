"""One labelling of a run: a folder that holds what one `sae-label` (or the end of `sae-train`)
wrote, never changed by a later one.

    <run>/labelings/<id>/features.parquet   one row per feature (run_schema.FEATURE_SCHEMA)
    <run>/labelings/<id>/families.parquet   feature families named with these labels (FAMILY_SCHEMA)
    <run>/labelings/<id>/labels.json        id, created, settings, families settings, labels, timings_s, units
    <run>/labelings/<id>/report.html, summary.md
    <run>/labelings/<id>/labeling.json      {"current": "<id>"}: <run>/labeling.json, through <run>/current

`<id>` is `<YYYY-MM-DD_HH-MM-SS>_<6 hex>`. A labelling is written into `labelings/.<id>.<pid>.tmp/`
and renamed into place only when its tables, labels.json and report are all there (RunDir.commit),
then made current by one rename of the `<run>/current` link (labeling_pointer.py); a killed
labelling leaves a hidden temp folder and the earlier labelling current."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from .atomic import atomic_write, read_json, write_json
from .errors import UserError
from .run_schema import FAMILY_SCHEMA, FEATURE_COLUMNS, FEATURE_SCHEMA, labels_file


def relabel_fix(run: str | Path) -> str:
    """The fix for a run whose labelling is missing or damaged, in every line that gives it: a new
    labelling replaces it whole (it was spelled two ways, "relabel the run" and "label the run again")."""
    return f"label the run again (sae-label run_dir={run})"


class Labeling:
    FEATURES, FAMILIES, LABELS = "features.parquet", "families.parquet", "labels.json"
    REPORT, SUMMARY = "report.html", "summary.md"
    FILES = (FEATURES, FAMILIES, LABELS, REPORT, SUMMARY)  # what the run's top level mirrors
    POINTER = "labeling.json"  # {"current": "<id>"}, mirrored at the top too (labeling_pointer.py)

    def __init__(self, folder: str | Path, labeling_id: str = "") -> None:
        self.folder, self.id = Path(folder), labeling_id
        self.created = ""  # set by RunDir.new_labeling; labels.json keeps it

    def __repr__(self) -> str:
        return f"Labeling({self.folder})"

    @property
    def features(self) -> Path:
        return self.folder / self.FEATURES

    @property
    def families(self) -> Path:
        return self.folder / self.FAMILIES

    @property
    def labels_path(self) -> Path:
        return self.folder / self.LABELS

    @property
    def report(self) -> Path:
        return self.folder / self.REPORT

    @property
    def summary_md(self) -> Path:
        return self.folder / self.SUMMARY

    def has_features(self) -> bool:
        return self.features.is_file()

    # ---- writers ------------------------------------------------------------------------------
    def write_features(self, df: pd.DataFrame) -> Path:
        """features.parquet with the contract's columns and types."""
        return _write_parquet(self.features, df[FEATURE_COLUMNS], FEATURE_SCHEMA)

    def write_families(self, df: pd.DataFrame) -> Path:
        return _write_parquet(self.families, df, FAMILY_SCHEMA)

    def write_labels(self, settings: dict, families: dict | None, summary: dict) -> Path:
        """labels.json: how this labelling was made (settings) and what it found (summary)."""
        return write_json(self.labels_path, labels_file(self.id, self.created, settings, families, summary))

    def write_text(self, name: str, text: str) -> Path:
        """report.html / summary.md."""
        if name not in (self.REPORT, self.SUMMARY):
            raise ValueError(f"a labelling holds no text file {name!r}")
        return atomic_write(self.folder / name, lambda tmp: tmp.write_text(text, encoding="utf-8"))

    # ---- readers ------------------------------------------------------------------------------
    @property
    def fix(self) -> str:  # the run: <run>/labelings/<id>/ (or a labelling's temp folder beside <id>/)
        return relabel_fix(self.folder.parent.parent)

    def info(self) -> dict:
        """labels.json (every finished labelling has one: RunDir.commit requires it)."""
        return read_json(self.labels_path, self.fix)

    def _section(self, key: str) -> dict:
        """One section of labels.json, an object ({} when absent); one line for another type (a
        "labels": 5 written by hand was a TypeError traceback from the API's Run.load)."""
        value = self.info().get(key) or {}
        if not isinstance(value, dict):
            raise UserError(f'{self.labels_path} holds "{key}": {json.dumps(value)[:40]}, not an object; {self.fix}')
        return dict(value)

    def summary(self) -> dict:
        """The label summary (means, medians, verdict counts): labels.json's "labels" section."""
        return self._section("labels")

    def timings(self) -> dict:
        return self._section("timings_s")

    def settings(self) -> dict:
        return self._section("settings")

    def read_features(self, columns: list[str] | None = None) -> pd.DataFrame:
        """features.parquet (only those of `columns` it has, when given); one line naming the file when unreadable."""
        return self.read_table(self.FEATURES, columns).to_pandas()

    def read_families(self) -> pd.DataFrame | None:
        return self.read_table(self.FAMILIES).to_pandas() if self.families.is_file() else None

    def read_table(self, name: str, columns: list[str] | None = None):
        """One of its tables (features.parquet, families.parquet) as a pyarrow Table, only those of
        `columns` it has when given: the one parquet reader of a labelling; one line naming the
        file and the fix when it is unreadable."""
        import pyarrow.parquet as pq

        path, fix = self.folder / name, self.fix
        if path.is_dir():  # pyarrow reads a folder as an empty dataset: "no feature_id column" misled
            raise UserError(f"{path} is a folder, not a table; {fix}")
        try:
            if columns is not None:
                columns = [c for c in columns if c in pq.read_schema(path).names]
            table = pq.read_table(path, columns=columns)
        except FileNotFoundError:
            raise UserError(f"{path} is missing; {fix}") from None
        except Exception as err:  # pyarrow raises several types for garbage, truncated or foreign files
            raise UserError(
                f"{path} cannot be read as a table ({str(err).splitlines()[0]}); {fix} or delete {path}"
            ) from None
        return _as_contract(table, SCHEMAS[name], path, fix)


SCHEMAS = {Labeling.FEATURES: FEATURE_SCHEMA, Labeling.FAMILIES: FAMILY_SCHEMA}


def _as_contract(table, schema, path: Path, fix: str):
    """The table with each of its columns that the contract names in the contract's type: a column
    of another type (a table edited by hand, or written by another tool) is cast when that loses
    nothing (int64 ids read as strings), else one line naming it. top_acts of strings, a density of
    words or duplicated ids were a ValueError traceback from whichever reader met them first."""
    import pyarrow as pa

    for i, name in enumerate(table.column_names):
        want = schema.field(name).type if name in schema.names else None
        if want is None or table.column(i).type == want:
            continue
        try:
            table = table.set_column(i, pa.field(name, want), table.column(i).cast(want))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
            raise UserError(f"{path}: column {name} holds {table.column(i).type}, not {want}; {fix}") from None
    return table


def _write_parquet(path: Path, df: pd.DataFrame, schema) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    # pandas types the columns of an empty frame float64, which arrow cannot cast to list<int64>
    table = schema.empty_table() if df.empty else pa.Table.from_pandas(df, schema=schema, preserve_index=False)
    return atomic_write(path, lambda tmp: pq.write_table(table, tmp))
