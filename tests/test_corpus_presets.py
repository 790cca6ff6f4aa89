"""The corpus-size presets (conf/experiment/corpus_*.yaml) of docs/application/choosing-an-sae.md:
each composes through real Hydra, passes validation, and follows the rule the study set for small
corpora (enough optimiser steps that training is more than warm-up and decay)."""

from __future__ import annotations

import pytest

from sae_lightning.validate import check_config

from .conftest import compose_cfg

BANDS = {"corpus_10k": 10_000, "corpus_100k": 100_000}  # the corpus size each preset is for
MIN_STEPS = (
    570  # the pre-study default run (32,562 sentences, batches of 512, 10 epochs); the 30 % corpus at 512 got 170
)


def steps(cfg, n_texts: int) -> int:
    per_epoch = int(n_texts * (1 - cfg.data.val_fraction)) // cfg.data.batch_size
    return per_epoch * cfg.trainer.max_epochs


@pytest.mark.parametrize("preset", sorted(BANDS))
def test_a_corpus_preset_composes_validates_and_trains_long_enough(preset, tmp_path):
    cfg = compose_cfg([f"experiment={preset}"], tmp_path, tmp_path)
    check_config(cfg)
    assert steps(cfg, BANDS[preset]) >= MIN_STEPS
    assert cfg.sae.k < cfg.sae.d_sae and cfg.module.warmup_steps < steps(cfg, BANDS[preset]) / 2


def test_the_defaults_are_the_built_in_corpus_band_and_the_presets_move_only_what_they_name(tmp_path):
    """The built-in corpus (32,562 sentences) is the 30k band: the defaults are its setting, and a
    preset changes the SAE, batch and epochs only, never the data, labelling or embedder."""
    default = compose_cfg([], tmp_path, tmp_path)
    assert steps(default, 32_562) >= MIN_STEPS
    small = compose_cfg(["experiment=corpus_10k"], tmp_path, tmp_path)
    assert steps(default, 10_000) < MIN_STEPS  # why the 10k band needs its own preset
    for group in ("domain", "embedder", "labeling", "module"):
        assert small[group] == default[group], group
