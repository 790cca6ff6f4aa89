"""The current labelling of a served run as arrays the pages filter and look up: one Catalog per
labelling, rebuilt when the run is relabelled (state.py notices).

Verdicts are read as the report reads them (report/verdicts.py), in the order the labelling
names them (labels/scoring/verdict.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..report.load import RunData, report_data
from ..report.sections import domains_of
from ..report.verdicts import read_verdicts
from ..run_reader import RunReader
from ..run_schema import VERDICTS

CONCEPT = "concept"  # the head concept of a feature's label, when the labelling wrote that column


@dataclass
class Catalog:
    data: RunData
    row_of: dict[int, int]  # feature id -> row of features.parquet
    verdict: np.ndarray  # [n] str
    label: list[str]
    concept: list[str] | None  # None when the labelling has no concept column
    search_text: list[str]  # lower-case label, concept and keywords: what the text search matches
    score: np.ndarray  # label_score, NaN where unscored or absent
    main: list[str]  # main domain per row ("" unknown)
    max_act: np.ndarray  # top train activation per row (NaN unknown): the sliders' scale
    families_of: dict[int, list[int]] = field(default_factory=dict)  # feature id -> families it is in

    @property
    def n(self) -> int:
        return self.data.n

    def verdict_names(self) -> list[str]:
        """The project's verdicts in their order (a filter for one no feature has is an empty list,
        not an error)."""
        return list(VERDICTS)

    def domains(self) -> list[str]:
        return domains_of(self.data)

    def col(self, name: str, row: int):
        values = self.data.cols.get(name)
        return None if values is None else values[row]

    def family(self, family_id: int) -> dict | None:
        fam = self.data.families
        if fam is None or family_id not in fam["family_id"]:
            return None
        i = fam["family_id"].index(family_id)
        return {k: v[i] for k, v in fam.items()}

    def n_families(self) -> int:
        return 0 if self.data.families is None else len(self.data.families["family_id"])


def load_catalog(run: Path | RunReader) -> Catalog:
    data = report_data(run)
    c, n = data.cols, data.n
    verdict = read_verdicts(data)
    label = [v or "" for v in (c.get("label") or [""] * n)]
    concept = [v or "" for v in c[CONCEPT]] if CONCEPT in c else None
    keywords = c.get("keywords") or [[] for _ in range(n)]
    search_text = [" ".join([label[i], concept[i] if concept else "", *(keywords[i] or [])]).lower() for i in range(n)]
    score = data.floats("label_score")
    acts = c.get("top_acts") or [[] for _ in range(n)]
    families_of: dict[int, list[int]] = {}
    if data.families is not None:
        for fid, parent, kids in zip(data.families["family_id"], data.families["parent"], data.families["children"]):
            for member in [parent, *(kids or [])]:
                families_of.setdefault(int(member), []).append(int(fid))
    return Catalog(
        data,
        {int(f): i for i, f in enumerate(data.feature_id)},
        verdict,
        label,
        concept,
        search_text,
        score if score is not None else np.full(n, np.nan),
        [v or "" for v in (c.get("main_domain") or [""] * n)],
        np.array([float(a[0]) if a is not None and len(a) else np.nan for a in acts]),
        families_of,
    )
