"""The page's stylesheet and script, shipped as package data next to the template and inlined
into every page (the report must open from disk with no network)."""
from importlib.resources import files

_TEMPLATES = files("sae_lightning.report").joinpath("templates")
CSS = _TEMPLATES.joinpath("report.css").read_text(encoding="utf-8")
JS = _TEMPLATES.joinpath("report.js").read_text(encoding="utf-8")
