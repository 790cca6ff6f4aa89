"""mkdocs hook: adds the generated config reference (reference/config.md) to the site."""

from __future__ import annotations

import sys
from pathlib import Path

from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "docs"))

from gen_config_reference import config_reference  # noqa: E402


def on_files(files, config):
    files.append(File.generated(config, "reference/config.md", content=config_reference(ROOT / "conf")))
    return files
