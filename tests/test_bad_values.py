"""Values a hostile command line gives each knob: accepted ones that made a run of nothing (every row
held out, every coherence NaN), ones that reached torch or the OS as a traceback (a thread count no
machine has), and sae-diff group specs whose settings were composed and then ignored. Each is one
line naming the knob and the fix, exit status 2, nothing written. The commands run in this process
through their console entry points, on a small .npy (tests/test_one_line_errors.py's helpers)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from sae_lightning.errors import UserError
from sae_lightning.labels.scoring.coherence import feature_coherence
from sae_lightning.schemas.embedder import EmbedderConfig
from sae_lightning.schemas.labeling import LabelingConfig
from sae_lightning.schemas.training import ModuleConfig
from sae_lightning.validate import check_settings

from .cli_runner import run_script, wrote_nothing
from .test_one_line_errors import refused, train


@pytest.mark.parametrize(
    "setting, says",
    [
        # round(200 x 0.999) = 200 rows held out: the first check to fail named sae.dead_after_samples=0
        ("data.val_fraction=0.999", "data.val_fraction=0.999 holds out all 200 rows of the store, leaving none"),
        # 30 top texts hold at most 30 documents: every coherence NaN and every verdict weak, accepted
        ("labeling.coherence_min_docs=31", "labeling.coherence_min_docs=31 is above labeling.m=30"),
        # glibc's mallopt takes a C int: ctypes masked 4096 MiB to 0 bytes (an mmap per allocation), accepted
        ("runtime.keep_freed_mib=4096", "runtime.keep_freed_mib=4096 is invalid; set runtime.keep_freed_mib to a"),
        # each query's neighbours are the other 2,047 texts: metrics.json held retrieval_recall@100000 = 1.0
        ("module.retrieval_k=100000", "module.retrieval_k=100000 retrieves every other one of module.retrieval_q"),
    ],
)
def test_values_that_leave_the_work_nothing_or_undo_it_are_refused(setting, says, tmp_path):
    res = train(tmp_path, setting)
    assert refused(res, says), res.err
    assert "dead_after_samples" not in res.err and wrote_nothing(tmp_path / "out")


def test_configs_built_in_python_meet_the_same_rules():
    with pytest.raises(UserError, match=r"labeling.coherence_min_docs=31 is above labeling.m=30"):
        LabelingConfig(coherence_min_docs=31)
    assert LabelingConfig(coherence_min_docs=30).coherence_min_docs == 30
    with pytest.raises(UserError, match=r"module.retrieval_k=39 retrieves every other one of .*=40 texts"):
        ModuleConfig(retrieval_k=39, retrieval_queries=40)
    assert ModuleConfig(retrieval_k=38, retrieval_queries=40).retrieval_k == 38


@pytest.mark.parametrize(
    "key",
    [
        "runtime.torch_threads",
        "runtime.small_op_threads",
        "labeling.small_op_threads",
        "data.num_workers",
        "trainer.devices",
    ],
)
def test_thread_and_process_counts_no_machine_has_are_refused(key, tmp_path):
    """runtime.torch_threads=100000 ran out of memory starting the threads: a MemoryError
    traceback (exit status 1), after the log folder was made; trainer.devices=100000 on a CPU is
    99,999 processes, each running the command again."""
    res = train(tmp_path, f"{key}=100000")
    assert refused(res, f"{key}=100000 is invalid; set {key} to a "), res.err
    assert "to 1024" in res.err and wrote_nothing(tmp_path / "out")


@pytest.mark.parametrize("name", ["torch_threads", "compute_workers"])
def test_sae_serve_thread_counts_have_the_same_bound(name):
    with pytest.raises(UserError, match=rf"serve.{name}=100000 is invalid; .* to 1024"):
        check_settings("serve", {name: 100000})
    check_settings("serve", {name: 1024})


def test_a_max_seq_length_past_the_models_positions_is_refused_before_the_store_begins(tmp_path):
    """MiniLM has 512 position embeddings: embedder.max_seq_length=100000 failed at the first long
    text inside torch (a size-mismatch traceback), after the store was begun."""
    csv = tmp_path / "long.csv"
    csv.write_text("text\n" + " ".join(f"word{i}" for i in range(1000)) + "\n")
    args = ["domain=files", f"domain.path={csv}", "embedder.show_progress=false"]
    places = [f"paths.log_dir={tmp_path / 'out'}", f"paths.cache_dir={tmp_path / 'cache'}"]
    res = run_script("sae-embed", *args, "embedder.max_seq_length=100000", *places)
    assert refused(res, "embedder.max_seq_length=100000 is more tokens than sentence-transformers/all-MiniLM-L6-v2"), (
        res.err[-2000:]
    )
    assert "set it to at most 512" in res.err and wrote_nothing(tmp_path / "out")
    assert not list((tmp_path / "cache").rglob("*.json")) and not list((tmp_path / "cache").rglob("*.parquet"))
    assert run_script("sae-embed", *args, "embedder.max_seq_length=512", *places).code == 0


@pytest.mark.parametrize(
    "settings, says",
    [
        # the group of a top-level key is "": the line read "the  settings are"
        (["+foo=1"], "foo is not a setting (the top-level settings are: ckpt_path, run_dir, seed, task_name, train)"),
        # a null limit was shown as Python's None, a value the command line does not take
        (["module.lr=1e30", "module.max_weight_rms=null"], "training stopped: training diverged at step 0"),
    ],
)
def test_lines_show_settings_as_the_command_line_writes_them(settings, says, tmp_path):
    res = train(tmp_path, *settings)
    assert refused(res, says), res.err
    assert "None" not in res.err and "  " not in res.err and wrote_nothing(tmp_path / "out")


def test_sae_embed_refuses_train_true_which_it_ignored(tmp_path):
    """sae-embed is sae-train's train=false: train=true was accepted, and nothing trained."""
    res = run_script("sae-embed", "domain=npy", "domain.path=x.npy", f"paths.log_dir={tmp_path / 'out'}", "train=true")
    assert refused(res, "train=true: sae-embed only builds the embedding store; train with sae-train"), res.err
    assert wrote_nothing(tmp_path / "out")


def test_no_validation_rows_train_without_a_word_from_lightning(tmp_path):
    """data.val_fraction=0 (no validation metrics, no label scores; documented) printed Lightning's
    'Total length of `DataLoader` across ranks is zero' on stderr, with its source path."""
    with warnings.catch_warnings(record=True) as caught:  # pytest keeps warnings off stderr: seen here
        warnings.simplefilter("always")
        res = train(tmp_path, "data.val_fraction=0")
    assert res.code == 0 and res.error_lines == [], res.err
    assert not [w for w in caught if "DataLoader" in str(w.message)], [str(w.message) for w in caught]
    (run,) = (tmp_path / "out" / "train" / "runs" / "npy").iterdir()
    assert (run / "checkpoints" / "last.ckpt").is_file() and "fve" not in (run / "metrics.json").read_text()


def test_a_one_text_corpus_has_no_coherence_baseline_and_says_nothing_about_it():
    """domain.limit=1 trains on one text: the baseline's random pairs of distinct documents are none,
    and numpy printed four RuntimeWarnings (an empty mean, degrees of freedom) on stderr."""
    embeddings = np.random.default_rng(0).standard_normal((3, 8)).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        found = feature_coherence(np.array([[0, -1]]), embeddings, np.array([0]), np.arange(3), min_docs=2)
    assert np.isnan(found.baseline_mean) and np.isnan(found.score).all()


def test_an_empty_run_dir_is_named_as_the_bad_value_not_taken_for_the_current_folder(tmp_path, monkeypatch):
    """run_dir= (an unset shell variable) made the run folder the current one; where that held files
    the line was '. holds files that are not a run's', naming no bad value."""
    (tmp_path / "mine.txt").write_text("mine")
    monkeypatch.chdir(tmp_path)
    res = train(tmp_path, "run_dir=")
    assert refused(res, "run_dir= is invalid; set run_dir to a non-empty string, or null"), res.err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["emb.npy", "mine.txt"]


@pytest.mark.parametrize(
    "settings, says",
    [
        # Hydra's line said "use +sae.k=4", which was then refused as no setting of jumprelu's
        (["sae=jumprelu", "sae.k=4"], "sae.k is not a setting (the sae settings are: architecture, bandwidth,"),
        (["foo=1"], "foo is not a setting (the top-level settings are: ckpt_path, run_dir, seed"),
        # Hydra's "+" was the way to a TypeError traceback from Lightning after the store step (exit 1)
        (["trainer.max_epoch=3"], "trainer.max_epoch is not an argument of pytorch_lightning.Trainer; check"),
        (["+trainer.max_epoch=3"], "trainer.max_epoch is not an argument of pytorch_lightning.Trainer; check"),
        (["+callbacks.model_checkpoint.monitorr=x"], "callbacks.model_checkpoint.monitorr is not an argument of"),
        (["logger=wandb", "+logger.wandb.settings.nosuch=1"], "logger.wandb.settings.nosuch is not an argument of w"),
    ],
)
def test_a_key_no_setting_and_no_argument_names_itself_not_hydras_plus(settings, says, tmp_path):
    res = train(tmp_path, *settings)
    assert refused(res, says), res.err
    assert "+" not in res.err and wrote_nothing(tmp_path / "out", tmp_path / "cache")


def test_arguments_the_other_librarys_class_takes_still_pass(tmp_path, monkeypatch):
    from sae_lightning.hydra_setup import compose_and_check

    monkeypatch.chdir(tmp_path)
    compose_and_check(
        "config",
        [
            "+trainer.limit_val_batches=2",
            "+callbacks.model_checkpoint.save_on_exception=true",  # ModelCheckpoint's, through EpochCheckpoint
            "logger=wandb",
            "+logger.wandb.entity=me",  # WandbLogger passes **kwargs to wandb.init: not ours to tell
        ],
    )
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    "settings, says",
    [
        # Hydra's "Error locating target" traceback (and three lines it logged first), after the store step
        (["+callbacks.x._target_=nosuch.Class"], "callbacks.x._target_=nosuch.Class cannot be imported (No module"),
        (
            ["+callbacks.x._target_=pytorch_lightning.callbacks.Nosuch"],
            "callbacks.x._target_=pytorch_lightning.callbacks.Nosuch cannot be imported (pytorch_lightning.callbacks",
        ),
        # EarlyStopping requires monitor: a TypeError traceback from instantiate
        (
            ["+callbacks.x._target_=pytorch_lightning.callbacks.EarlyStopping"],
            "callbacks.x (pytorch_lightning.callbacks.EarlyStopping) needs monitor: add +callbacks.x.monitor=...",
        ),
    ],
)
def test_an_object_added_on_the_command_line_that_cannot_be_built_is_one_line(settings, says, tmp_path):
    res = train(tmp_path, *settings)
    assert refused(res, says), res.err
    assert wrote_nothing(tmp_path / "out", tmp_path / "cache")


@pytest.mark.parametrize(
    "setting, says",
    [
        # the line read "data.batch_size=512 is invalid; set data.batch_size to a whole number >= 1"
        ("data.batch_size='512'", "data.batch_size='512' is invalid: quoted, it is a string; set data.batch_size to a"),
        ("module.lr='0.01'", "module.lr='0.01' is invalid: quoted, it is a string; set module.lr to a finite number"),
        ("data.drop_last='true'", "data.drop_last='true' is invalid: quoted, it is a string; set data.drop_last to"),
    ],
)
def test_a_quoted_number_is_shown_quoted_not_as_the_number_it_is_not(setting, says, tmp_path):
    res = train(tmp_path, setting)
    assert refused(res, says), res.err
    assert res.err.rstrip().endswith(", unquoted") and wrote_nothing(tmp_path / "out")


def test_a_list_of_worker_devices_is_bounded_as_every_count_of_processes_is():
    """embedder.devices starts one sentence-transformers worker process per entry."""
    with pytest.raises(UserError, match=r"set embedder.devices to a list of up to 1024 cpu / cuda:N devices"):
        EmbedderConfig(devices=["cpu"] * 1025)
    assert EmbedderConfig(devices=["cpu", "cpu"]).devices == ["cpu", "cpu"]


def test_a_refused_value_of_any_length_is_cut_to_keep_the_line_readable(tmp_path):
    """labeling.stop_words=<3,000 characters> came back whole in the line (a pasted file, a list)."""
    res = train(tmp_path, "labeling.stop_words=" + "b" * 3000)
    assert refused(res, "labeling.stop_words=" + "b" * 80 + "... is invalid; set labeling.stop_words to e"), res.err
    assert len(res.err) < 300


def test_several_nodes_outside_any_cluster_are_refused_not_waited_for(tmp_path, monkeypatch):
    """trainer.num_nodes=2 on one machine waited in the rendezvous for a second machine nobody
    starts, forever (SIGTERM deferred too), after run.json was written."""
    from sae_lightning.schemas.lightning import nodes_problem

    for name in ("NODE_RANK", "MASTER_ADDR", "SLURM_NTASKS", "SLURM_JOB_NAME", "TORCHELASTIC_RUN_ID", "LSB_JOBID"):
        monkeypatch.delenv(name, raising=False)
    res = train(tmp_path, "trainer.num_nodes=2")
    assert refused(res, "trainer.num_nodes=2 but this process runs in no cluster job (SLURM, torchrun"), res.err
    assert wrote_nothing(tmp_path / "out", tmp_path / "cache")
    assert nodes_problem(2, [{"_target_": "x"}]) is None  # an environment plugin says which machine this is
    monkeypatch.setenv("NODE_RANK", "1")
    assert nodes_problem(2, None) is None
