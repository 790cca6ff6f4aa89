"""Checkpoints of a real training run: a signal mid-epoch writes one and `ckpt_path=last` resumes to
the same weights, a missing one is a clear error, and both checkpoint callbacks share last.ckpt
(the epoch one and the periodic one, by training time or by step count)."""

from __future__ import annotations

import signal

import pytest
import torch
from safetensors.torch import load_file

from sae_lightning.errors import UserError
from sae_lightning.run_dir import RunDir

from .conftest import compose_cfg
from .test_training import QUIET, npy_args, run, synthetic_npy  # noqa: F401 (synthetic_npy is a fixture)


@pytest.mark.slow
@pytest.mark.parametrize("signum,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_mid_epoch_then_resume_ends_with_the_same_weights(
    signum,
    code,
    synthetic_npy,  # noqa: F811 (the imported fixture, by name)
    tmp_path,
    cache_dir,
    capsys,
):
    """Ctrl-C / SIGTERM after step 6 of 31 per epoch (epoch 0, batch 6): a checkpoint, the resume
    line, exit 130 / 143; the resumed run's weights, sparsity and metrics equal an uninterrupted one's."""
    path, _ = synthetic_npy
    base = [
        "sae=topk",
        "sae.d_sae=128",
        "sae.k=8",
        "data.batch_size=128",
        "trainer.max_epochs=2",
        "sae.dead_after_samples=500",
        *npy_args(path),
        *QUIET,
    ]
    whole = run(base, tmp_path / "whole", cache_dir)
    stop = [
        "+callbacks.stop._target_=tests.helpers.SignalAtStep",
        "+callbacks.stop.step=6",
        f"+callbacks.stop.signum={int(signum)}",
    ]
    part = tmp_path / "part"
    with pytest.raises(SystemExit) as exited:
        run(base + stop, part, cache_dir)
    assert exited.value.code == code
    assert f"resume with: sae-train run_dir={part} ckpt_path=last" in capsys.readouterr().err
    assert not (part / "sae").exists() and not (part / "metrics.json").exists()
    assert torch.load(part / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 6
    with pytest.raises(UserError, match="already holds a run"):  # no earlier run is overwritten
        run(base, part, cache_dir)
    run(base + ["ckpt_path=last"], part, cache_dir)
    for name in ("sae_weights.safetensors", "sparsity.safetensors"):
        a, b = load_file(whole / "sae" / name), load_file(part / "sae" / name)
        for key in a:
            assert torch.equal(a[key], b[key]), (name, key)
    ma, mb = (RunDir(p).metrics() for p in (whole, part))  # the metrics; not the timings
    assert ma == mb


def test_ckpt_last_without_a_checkpoint_is_a_clear_error(synthetic_npy, tmp_path, cache_dir):  # noqa: F811 (the imported fixture, by name)
    path, _ = synthetic_npy
    with pytest.raises(UserError, match="no checkpoint at .*last.ckpt"):
        run(["ckpt_path=last", *npy_args(path), *QUIET], tmp_path / "new", cache_dir)


def test_both_checkpoint_callbacks_write_the_one_last_ckpt(synthetic_npy, tmp_path, cache_dir):  # noqa: F811 (the imported fixture, by name)
    """The epoch and the periodic ModelCheckpoint share last.ckpt; Lightning's version counter would
    make the second write last-v1.ckpt, and `ckpt_path=last` would then miss the newest steps."""
    path, _ = synthetic_npy
    out = run(
        [
            "sae.d_sae=64",
            "sae.k=4",
            "data.batch_size=256",
            "trainer.max_epochs=2",
            "callbacks.periodic_checkpoint.every_n_train_steps=4",
            *npy_args(path),
            *QUIET,
        ],
        tmp_path / "run",
        cache_dir,
    )
    names = sorted(p.name for p in (out / "checkpoints").glob("*.ckpt"))
    assert not [n for n in names if n.startswith("last-v")], names
    step = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)["global_step"]
    steps_per_epoch = int(4000 * (1 - 0.1)) // 256
    assert step == 2 * steps_per_epoch
    # The epoch's state is serialised once: last.ckpt is a second name of the epoch file, not a copy.
    (epoch_file,) = (out / "checkpoints").glob("epoch=1-*.ckpt")
    assert (out / "checkpoints" / "last.ckpt").samefile(epoch_file) and epoch_file.stat().st_nlink == 2


def test_the_epoch_checkpoint_skips_epochs_within_its_interval_but_never_the_last(synthetic_npy, tmp_path, cache_dir):  # noqa: F811 (the imported fixture, by name)
    """An epoch end writes only once the run's last checkpoint is min_interval_seconds old (the
    periodic checkpoint's every_n_seconds by default: 30 s, longer than this whole run), and the
    last epoch always writes; at 0 every epoch writes (all kept here: save_top_k=-1)."""
    path, _ = synthetic_npy
    base = ["sae.d_sae=64", "sae.k=4", "data.batch_size=256", "trainer.max_epochs=3", *npy_args(path), *QUIET]
    keep_all = ["callbacks.model_checkpoint.save_top_k=-1"]
    for interval, epochs in ((None, [2]), (0, [0, 1, 2])):
        extra = [] if interval is None else [f"callbacks.model_checkpoint.min_interval_seconds={interval}"]
        out = run([*base, *keep_all, *extra], tmp_path / f"run{interval}", cache_dir)
        files = sorted((out / "checkpoints").glob("epoch=*.ckpt"))
        assert [int(f.name.split("-")[0].split("=")[1]) for f in files] == epochs, files
        assert (out / "checkpoints" / "last.ckpt").samefile(files[-1])  # the final state, written once


def test_the_periodic_checkpoint_follows_training_time_unless_a_step_count_is_set(synthetic_npy, tmp_path, cache_dir):  # noqa: F811 (the imported fixture, by name)
    """conf/callbacks' periodic checkpoint rewrites last.ckpt after every `every_n_seconds` of
    training (a microsecond here: each step, the epoch checkpoint off, so last.ckpt is the last
    step's); every_n_train_steps, when given, replaces the time (Lightning takes one of the two)."""
    from datetime import timedelta

    from hydra.utils import instantiate

    periodic = compose_cfg([], tmp_path, cache_dir).callbacks.periodic_checkpoint
    by_time = instantiate(periodic)
    assert by_time._train_time_interval == timedelta(seconds=periodic.every_n_seconds)
    assert by_time._every_n_train_steps == 0 and by_time._every_n_epochs == 0
    by_steps = instantiate(
        compose_cfg(
            ["callbacks.periodic_checkpoint.every_n_train_steps=5"], tmp_path, cache_dir
        ).callbacks.periodic_checkpoint
    )
    assert by_steps._train_time_interval is None and by_steps._every_n_train_steps == 5
    path, _ = synthetic_npy
    out = run(
        [
            "sae.d_sae=64",
            "sae.k=4",
            "data.batch_size=256",
            "trainer.max_epochs=2",
            "~callbacks.model_checkpoint",
            "callbacks.periodic_checkpoint.every_n_seconds=1e-6",
            *npy_args(path),
            *QUIET,
        ],
        tmp_path / "run",
        cache_dir,
    )
    assert sorted(p.name for p in (out / "checkpoints").glob("*.ckpt")) == ["last.ckpt"]
    step = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)["global_step"]
    assert step == 2 * (int(4000 * (1 - 0.1)) // 256)


def test_lightning_arguments_of_the_epoch_checkpoint_pass_the_config_check(tmp_path, cache_dir):
    """The epoch checkpoint is ours (EpochCheckpoint) but takes every ModelCheckpoint argument:
    one the config does not list is Lightning's to check, as it was before the subclass."""
    from hydra.utils import instantiate

    from sae_lightning.training.callbacks import EpochCheckpoint
    from sae_lightning.validate import check_config

    cfg = compose_cfg(
        ["+callbacks.model_checkpoint.monitor=val/fve", "+callbacks.model_checkpoint.mode=max"], tmp_path, cache_dir
    )
    check_config(cfg)
    made = instantiate(cfg.callbacks.model_checkpoint)
    assert isinstance(made, EpochCheckpoint) and made.monitor == "val/fve" and made.mode == "max"
