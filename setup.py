"""Only what pyproject.toml cannot say: conf/, at the top of the repo, is also the package
sae_lightning.conf (each config group a sub-package of it), so a wheel carries the configs where
sae_lightning/conf_dir.py finds them. Folders of data files inside the package (report/templates)
are listed as namespace packages, which is how setuptools wants package data declared."""

from pathlib import Path

from setuptools import find_namespace_packages, setup

CONF_GROUPS = sorted(".".join(d.relative_to("conf").parts) for d in Path("conf").rglob("*") if d.is_dir())

setup(
    packages=[
        *find_namespace_packages(include=["sae_lightning", "sae_lightning.*"], exclude=["*.__pycache__"]),
        "sae_lightning.conf",
        *(f"sae_lightning.conf.{group}" for group in CONF_GROUPS),
    ],
    package_dir={"sae_lightning.conf": "conf"},
)
