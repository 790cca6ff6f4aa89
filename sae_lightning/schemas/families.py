"""The `families` group: feature families from the co-activation graph (a maximum spanning tree),
named by KeyBERT (sae_lightning/families). Each field states its default, type, meaning and range
once; conf/families/default.yaml is a preset on top, and run.json keeps the run's values (without
`enabled`) so that `sae-label` builds the same families."""

from __future__ import annotations

from dataclasses import dataclass

from .knobs import POSITIVE, TOP_TEXTS, check_fields, flag, knob, number


@dataclass
class FamiliesConfig:
    """How families are found and named."""

    enabled: bool = knob(True, "build <run>/families.parquet after labelling (needs labeling.enabled)", flag())
    min_weight: float = knob(
        0.2, "tree edges weaker than this (co-occurrence / min firing count) are cut", number(0, 1)
    )
    min_children: int = knob(2, "a parent needs at least this many children to form a family", POSITIVE)
    min_cooccur: int = knob(2, "pairs that fire together fewer times are no edge", POSITIVE)
    max_density: float = knob(
        0.1, "features firing on more than this share of rows stay out of the graph", number(0, 1, lo_open=True)
    )
    texts_per_member: int = knob(5, "top texts per member that name the family", TOP_TEXTS)

    def __post_init__(self) -> None:
        check_fields(self, "families")
