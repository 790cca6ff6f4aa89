"""python -m sae_lightning.diff: the same as sae-diff (works before the console script is installed)."""

from .cli import main

main()
