"""sae-label: relabel a finished run with other settings, without retraining; refuse non-runs."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from sae_lightning import cli
from sae_lightning.run_dir import RunDir

from .cli_runner import Result, run_script

SAE_LABEL = str(Path(sys.executable).parent / "sae-label")


def _label(run: Path, tmp_path: Path, *settings: str) -> Result:
    """sae-label run in this process (cli_runner)."""
    res = run_script("sae-label", f"run_dir={run}", *settings, f"paths.log_dir={tmp_path / 'logs'}")
    assert res.code == 0, res.err[-2000:]
    return res


@pytest.mark.slow
def test_relabel_a_finished_run_with_other_settings(tiny_labelled_run, tmp_path, cache_dir):
    """Two sae-label runs with different settings leave two new labellings beside the first: the
    last one current, every earlier one intact with its own settings, families relabelled too,
    metrics.json (training's) untouched."""
    run = tmp_path / "run"
    shutil.copytree(tiny_labelled_run, run)
    first = RunDir(run).labeling()
    first_features = first.features.read_bytes()
    metrics_before = (run / "metrics.json").read_bytes()

    res = _label(run, tmp_path, "labeling.top_n=5", "labeling.doc_embedding=mean")
    assert "report:" in res.out
    _label(run, tmp_path, "labeling.top_n=2")
    rd = RunDir(run)
    labelings = rd.labelings()
    assert len(labelings) == 3 and [lab.id for lab in labelings][0] == first.id
    current = rd.labeling()
    assert current.id == labelings[-1].id == json.loads((run / "labeling.json").read_text())["current"]
    assert [lab.settings()["top_n"] for lab in labelings[1:]] == [5, 2]
    assert labelings[1].settings()["doc_embedding"] == "mean" and labelings[2].settings()["doc_embedding"] != "mean"
    assert first.features.read_bytes() == first_features  # the earlier labelling is as it was

    for lab, top_n in ((labelings[1], 5), (current, 2)):
        features = lab.read_features()
        live = features[~features["dead"] & (features["label"] != "")]
        assert len(live) and live["keywords"].map(len).max() == top_n
        # the families are named with this labelling's labels, never an earlier one's
        families = lab.read_families()
        assert families is not None and len(families)
        by_id = features.set_index("feature_id")["label"]
        assert families["parent_label"].tolist() == [by_id[p] for p in families["parent"]]
        assert lab.report.is_file() or lab is labelings[1]
    # the top of the run folder mirrors the current labelling
    for name in ("features.parquet", "families.parquet", "labels.json", "report.html", "summary.md"):
        assert (run / name).read_bytes() == (current.folder / name).read_bytes(), name
    assert (run / "metrics.json").read_bytes() == metrics_before  # training's numbers, never rewritten
    info = json.loads(current.labels_path.read_text())
    assert set(info) == {"id", "created", "settings", "families", "labels", "timings_s", "units"}
    assert info["units"]["label_auroc_mean"] == "AUROC" and info["units"]["timings_s.total"] == "s"
    assert info["timings_s"]["total"] > 0 and not any(k.startswith("time_") for k in info["labels"])


def test_a_failed_relabel_leaves_the_current_labelling(tiny_labelled_run, tmp_path):
    """A labelling stopped half-written (Ctrl-C) leaves no folder behind and the earlier labelling
    current (a kill -9 is tests/test_faults.py's)."""
    run = tmp_path / "run"
    shutil.copytree(tiny_labelled_run, run)
    before = RunDir(run).labeling().id
    with pytest.raises(KeyboardInterrupt):
        with RunDir(run).new_labeling() as lab:
            lab.write_features(RunDir(run).labeling().read_features())
            raise KeyboardInterrupt
    assert RunDir(run).labeling().id == before
    assert [p.name for p in (run / "labelings").iterdir() if p.name != RunDir.LOCK] == [before]


def test_a_damaged_metrics_json_is_refused_before_the_labelling(tiny_labelled_run, tmp_path):
    """The report shows metrics.json: a cut one failed the relabel only after the scan, labels,
    scores and families were done (and thrown away)."""
    run = tmp_path / "run"
    shutil.copytree(tiny_labelled_run, run, symlinks=True)
    shutil.rmtree(run / "checkpoints")  # a copy without them: nothing to resume from
    (run / "metrics.json").write_text('{"metrics": {"fve"')
    before = RunDir(run).labeling().id
    res = run_script("sae-label", f"run_dir={run}", f"paths.log_dir={tmp_path / 'logs'}")
    assert res.code == 2 and res.error_lines == [
        f"error: {run / 'metrics.json'} is corrupt (Expecting ':' delimiter: line 1 column 19 (char 18)); "
        f"resume the training with `sae-train run_dir={run} ckpt_path=last`"
    ], res.err
    assert "scanned" not in res.err + res.out
    assert RunDir(run).labeling().id == before
    assert [p.name for p in (run / "labelings").iterdir() if p.name != RunDir.LOCK] == [before]


def test_sigterm_during_a_relabel_leaves_the_run_as_it_was(tiny_labelled_run, tmp_path):
    """SIGTERM (a scheduler's stop, `kill`) ends sae-label like Ctrl-C: one line, status 143, its
    temp labelling removed at once (not left for the next labelling to sweep up), no log folder."""
    run = tmp_path / "run"
    shutil.copytree(tiny_labelled_run, run)
    before = RunDir(run).labeling().id
    argv = [SAE_LABEL, f"run_dir={run}", f"paths.log_dir={tmp_path / 'logs'}"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while not list((run / "labelings").glob(".*.tmp")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)  # the signal lands while the new labelling is being written
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 143, err[-2000:]
    assert err.strip().splitlines()[-1] == "interrupted by SIGTERM: stopped; nothing half-written is left"
    assert RunDir(run).labeling().id == before
    assert [p.name for p in (run / "labelings").iterdir() if p.name != RunDir.LOCK] == [before]
    assert not (tmp_path / "logs").exists()


@pytest.mark.parametrize(
    "setting, says",
    [
        ("labeling.min_texts=31", "labeling.min_texts=31 is above labeling.m=30, the top texts a keyword"),
        ("labeling.min_df=129", "labeling.min_df=129 is above the SAE's 128 features, the documents a keyword is"),
    ],
)
def test_keyword_rules_no_keyword_can_pass_are_refused_before_the_scan(setting, says, tiny_labelled_run, tmp_path):
    """Both made a labelling of empty labels, every verdict weak, exit 0, and made it current."""
    run = shutil.copytree(tiny_labelled_run, tmp_path / "run", symlinks=True)
    before = RunDir(run).labeling().id
    res = run_script("sae-label", f"run_dir={run}", setting, f"paths.log_dir={tmp_path / 'logs'}")
    assert res.code == 2 and len(res.error_lines) == 1 and res.error_lines[0].startswith(f"error: {says}"), res.err
    assert "so no feature could get a label" in res.err and "scanned" not in res.out + res.err
    assert RunDir(run).labeling().id == before and not (tmp_path / "logs").exists()


def test_a_ctrl_c_that_lands_in_a_finaliser_still_stops_the_command(capsys):
    """Ctrl-C handled while the garbage collector ran a __del__ (regex's Group.__del__, in a
    relabel's KeyBERT phase: 1 of 15 tries) was printed as "Exception ignored in ..." and dropped,
    and sae-label went on to its end with status 0. The signal is now sent again after it."""

    class Finalised:
        def __del__(self) -> None:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.5)  # Python runs the handler here, inside __del__

    def work(argv: list[str]) -> None:
        Finalised()  # dropped at once: its __del__ runs now
        time.sleep(5)
        raise AssertionError("the Ctrl-C was lost in the finaliser")

    with pytest.raises(SystemExit) as stop:
        cli.plain_command(work)()
    err = capsys.readouterr().err
    assert stop.value.code == 130 and "Exception ignored" not in err, err
    assert err.strip().splitlines()[-1] == "interrupted by SIGINT: stopped; nothing half-written is left"


def test_a_ctrl_c_in_a_finaliser_as_the_command_ends_is_not_lost(capsys):
    """The signal is sent again a moment after the finaliser; a command that ended first had put
    its handlers back, so the resend was lost (exit 0: sae-serve after its graceful shutdown) or
    hit whatever ran next. Now the end of the command delivers it, once."""

    class Finalised:
        def __del__(self) -> None:
            os.kill(os.getpid(), signal.SIGINT)  # handled here, inside __del__

    def work(argv: list[str]) -> None:
        Finalised()  # the command ends at once, long before the resend's timer

    with pytest.raises(SystemExit) as stop:
        cli.plain_command(work)()
    assert stop.value.code == 130, capsys.readouterr().err
    time.sleep(0.2)  # the timer finds nothing left to send: no second Ctrl-C reaches pytest


@pytest.mark.slow
def test_a_relabel_logs_only_its_own_lines(tiny_labelled_run, tmp_path):
    """A fresh sae-label process keeps the third-party loggers to warnings as sae-train does
    (hydra/job_logging/quiet.yaml): no "No device provided" or model-folder line per model load."""
    run = tmp_path / "run"
    shutil.copytree(tiny_labelled_run, run)
    argv = [SAE_LABEL, f"run_dir={run}", "report=false", f"paths.log_dir={tmp_path / 'logs'}"]
    proc = subprocess.run(argv, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    logged = re.findall(r"^\[[^]]+\]\[([\w.]+)\]", proc.stdout + proc.stderr, re.M)
    assert logged and {name.split(".")[0] for name in logged} == {"sae_lightning"}, logged


@pytest.mark.parametrize("judge", ["a folder", "a name no cache holds"])
def test_a_judge_that_cannot_load_is_refused_before_the_work(judge, tiny_labelled_run, tmp_path):
    """One line naming labeling.judge_model (not the store's embedder.model) and its fix, before
    the labelling runs; the run keeps its labelling and gains no folder."""
    run = tmp_path / "run"
    shutil.copytree(tiny_labelled_run, run)
    before = sorted(p.name for p in (run / "labelings").iterdir())
    name = str(tmp_path) if judge == "a folder" else "no-such-judge-model"
    res = run_script(
        "sae-label", f"run_dir={run}", f"labeling.judge_model={name}", f"paths.log_dir={tmp_path / 'logs'}"
    )
    lines = res.err.strip().splitlines()
    assert res.code == 2 and len(lines) == 1, res.err[-2000:]
    says, fix = (
        ("is not a sentence-transformers model folder", "point it at a folder saved with SentenceTransformer.save()")
        if judge == "a folder"
        else ("cannot be loaded as a sentence-transformers model", "set labeling.judge_model to a model folder")
    )
    assert lines[0].startswith(f"error: labeling.judge_model={name} {says}") and fix in lines[0], lines[0]
    assert judge != "a folder" or "scanned" not in res.out + res.err  # a folder is checked before the scan
    assert sorted(p.name for p in (run / "labelings").iterdir()) == before and not (tmp_path / "logs").exists()
    # a hub id says what it waits on first: without network the hub client retries for about a minute
    fetching = f"labeling.judge_model={name} is no installed model or folder: loading it from the Hugging Face hub"
    assert (fetching in res.out) == (judge == "a name no cache holds"), res.out[-2000:]


def test_not_a_run_is_one_line_and_creates_nothing(tmp_path):
    target = tmp_path / "nowhere"
    res = run_script("sae-label", f"run_dir={target}", f"paths.log_dir={tmp_path / 'logs'}")
    assert res.code == 2
    assert res.err.strip().splitlines() == [
        f"error: {target} is not a run dir: the folder does not exist; give the folder of a finished run"
    ]
    assert not target.exists() and not (tmp_path / "logs").exists()


@pytest.mark.parametrize("setting", ["labeling.enabled=false", "labeling.every_n_epochs=2"])
def test_training_only_labeling_settings_are_refused_before_the_work(setting, tiny_labelled_run, tmp_path):
    """sae-label accepted labeling.enabled=false and labelled all the same: when (and whether) to label
    is sae-train's; refused in one line, the run untouched and no log folder made."""
    before = sorted(p.name for p in (tiny_labelled_run / "labelings").iterdir())
    res = run_script("sae-label", f"run_dir={tiny_labelled_run}", setting, f"paths.log_dir={tmp_path / 'logs'}")
    assert res.code == 2 and res.err.strip().splitlines() == [
        f"error: {setting}: whether and when to label is sae-train's setting; sae-label labels the run "
        "once, so leave it out"
    ]
    assert sorted(p.name for p in (tiny_labelled_run / "labelings").iterdir()) == before
    assert not (tmp_path / "logs").exists()


@pytest.mark.slow
def test_a_relabel_uses_the_runs_own_seed(small_store, cache_dir, tmp_path):
    """sae-label without seed= samples its negatives and random labels with the run's seed: a relabel
    of a seed-1 run writes the features its training-time labelling wrote, verdicts included;
    seed=0 on the command line is used as given, and moves the seed-dependent scores."""
    from sae_lightning.pipeline import train

    from .conftest import SMALL_TOPICS, compose_cfg

    run = tmp_path / "run"
    topics = "[" + ",".join(SMALL_TOPICS) + "]"
    overrides = ["seed=1", "domain=wiki_all", f"domain.topics={topics}", "domain.limit=600", "domain.seed=0"]
    small = ["sae.d_sae=64", "sae.k=4", "data.batch_size=32", "trainer.max_epochs=2", "logger=none"]
    train(compose_cfg([*overrides, *small, "trainer.enable_progress_bar=false"], run, cache_dir))
    at_training = RunDir(run).labeling().read_features()

    _label(run, tmp_path, "report=false")
    relabel = RunDir(run).labeling()
    assert relabel.settings()["seed"] == 1
    pd.testing.assert_frame_equal(relabel.read_features(), at_training)

    _label(run, tmp_path, "report=false", "seed=0")
    other = RunDir(run).labeling()
    assert other.settings()["seed"] == 0
    assert not other.read_features().equals(at_training)  # the check above can tell the seeds apart


def test_a_cold_phrase_cache_says_what_it_embeds(small_store, tmp_path, caplog):
    """A first labelling's long embedding of phrases is announced in one line (phrase_cache.py),
    a warm cache's is not: the packaged model on a copy of the small store's texts."""
    import logging

    from sae_lightning.labels.naming.phrase_cache import ANNOUNCE_FROM, PhraseEmbeddingCache, model_and_cache

    model, shared = model_and_cache(small_store)
    texts = small_store.metadata()["text"]
    phrases = [f"{t[:40]} {i}" for i, t in enumerate(texts)] + [f"{t[-40:]} ({i})" for i, t in enumerate(texts)]
    phrases = phrases[:ANNOUNCE_FROM]
    assert len(set(phrases)) == ANNOUNCE_FROM
    cache = PhraseEmbeddingCache(tmp_path / "phrases", shared.embed, "MiniLM")
    with caplog.at_level(logging.INFO, logger="sae_lightning.labels.naming.phrase_cache"):
        assert cache.get(phrases).shape == (len(phrases), small_store.dim)
        cache.get(phrases)  # warm: nothing to say
    said = [r.getMessage() for r in caplog.records if "no labelling of this store" in r.getMessage()]
    assert said == [
        f"embedding {len(phrases)} phrases and texts with MiniLM that no labelling of this store has "
        f"embedded yet (kept in {tmp_path / 'phrases'}: later labellings reuse them)"
    ]
