"""Only what pyproject.toml cannot say: conf/, at the top of the repo, is also the package
sae_lightning.conf (each config group a sub-package of it), so a wheel carries the configs where
sae_lightning/conf_dir.py finds them."""
from pathlib import Path

from setuptools import find_packages, setup

CONF_GROUPS = sorted(".".join(d.relative_to("conf").parts) for d in Path("conf").rglob("*") if d.is_dir())

setup(
    packages=[*find_packages(include=["sae_lightning", "sae_lightning.*"]), "sae_lightning.conf",
              *(f"sae_lightning.conf.{group}" for group in CONF_GROUPS)],
    package_dir={"sae_lightning.conf": "conf"},
)
