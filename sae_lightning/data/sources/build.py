"""A source from a composed `domain` node: the class its `_target_` names, given its typed config."""

from __future__ import annotations

from typing import Any

from ...schemas.knobs import from_node


def build_source(node: Any) -> Any:
    """The text source of a composed config's `domain` group (sae-train, sae-embed, sae-diff's
    groups): its schema instance checks every knob by the rules validate.py checked them with."""
    from hydra.utils import get_class

    cls = get_class(str(node["_target_"]))
    return cls(from_node(cls.config_class, node))
