"""Text sources: the built-in corpus, tabular files, HF save_to_disk folders, .npy, and bad input."""

from __future__ import annotations

import collections

import numpy as np
import pandas as pd
import pytest

from sae_lightning.data.sources import (
    HFDataset,
    NpyEmbeddings,
    SourceError,
    TextFiles,
    build_source,
    load_npy,
)
from sae_lightning.errors import UserError
from sae_lightning.schemas.domain import WIKI_TOPICS, FilesConfig, HFConfig, NpyConfig
from sae_lightning.validate import check_config

from .cli_runner import run_script
from .conftest import compose_cfg, wiki_source


def test_wiki_topic_sentences_keep_their_topic():
    corpus = wiki_source(topics=["Mathematics"]).load()
    assert len(corpus) > 700
    assert set(corpus.domains) == {"Mathematics"}
    assert all(len(t.split()) >= 4 for t in corpus.texts)
    assert len(set(corpus.ids)) == len(corpus)


def test_wiki_all_covers_the_eleven_topics_and_articles_unit():
    corpus = wiki_source(topics=list(WIKI_TOPICS.values()), unit="article").load()
    assert set(corpus.domains) == set(WIKI_TOPICS.values())
    assert 8000 < len(corpus) < 10000  # one text per article, Uncategorized left out


def test_limit_is_spread_over_domains_and_deterministic():
    a = wiki_source(topics=list(WIKI_TOPICS.values()), limit=110, seed=3).load()
    b = wiki_source(topics=list(WIKI_TOPICS.values()), limit=110, seed=3).load()
    c = wiki_source(topics=list(WIKI_TOPICS.values()), limit=110, seed=4).load()
    assert len(a) == 110 and a.ids == b.ids and a.ids != c.ids
    assert set(collections.Counter(a.domains).values()) == {10}


@pytest.mark.parametrize(
    "build",
    [
        lambda: FilesConfig(path="x.csv", limit=0),
        lambda: HFConfig(name="ag_news", limit=0),
        lambda: NpyConfig(path="x.npy", limit=0),
    ],
)
def test_every_source_config_refuses_a_bad_limit_in_one_line(build):
    with pytest.raises(
        UserError, match=r"^domain.limit=0 is invalid; set domain.limit to a whole number >= 1, or null$"
    ):
        build()


def test_hf_needs_a_hub_id_or_a_folder_in_python_and_on_the_command_line(tmp_path):
    with pytest.raises(UserError, match=r"^domain=hf needs domain.name=<hub id> or domain.path="):
        HFConfig()
    with pytest.raises(UserError, match=r"^domain=hf needs domain.name=<hub id> or domain.path="):
        check_config(compose_cfg(["domain=hf"], tmp_path, tmp_path))


def test_a_source_refuses_another_sources_config():
    with pytest.raises(SourceError, match="^TextFiles takes a FilesConfig, not NpyConfig$"):
        TextFiles(NpyConfig(path="x.npy"))


def test_build_source_gives_the_class_its_typed_config(tmp_path):
    cfg = compose_cfg(["domain=files", f"domain.path={tmp_path / 'd.csv'}", "domain.limit=3"], tmp_path, tmp_path)
    source = build_source(cfg.domain)
    assert isinstance(source, TextFiles) and isinstance(source.cfg, FilesConfig)
    assert (source.cfg.limit, source.cfg.domain, source.cfg.seed) == (3, "default", cfg.seed)


@pytest.mark.parametrize("suffix", ["csv", "jsonl", "parquet"])
def test_files_with_text_and_domain_columns(tmp_path, suffix):
    frame = pd.DataFrame(
        {
            "abstract": ["Galaxies merge over time.", "  ", "Neural nets learn features.", None],
            "field": ["astro", "astro", "cs", "cs"],
        }
    )
    path = tmp_path / f"data.{suffix}"
    {
        "csv": lambda: frame.to_csv(path, index=False),
        "jsonl": lambda: frame.to_json(path, orient="records", lines=True),
        "parquet": lambda: frame.to_parquet(path),
    }[suffix]()
    corpus = TextFiles(FilesConfig(path=str(path), text_column="abstract", domain_column="field")).load()
    assert corpus.texts == ["Galaxies merge over time.", "Neural nets learn features."]
    assert corpus.domains == ["astro", "cs"]
    assert corpus.skipped_empty == 2


def test_missing_column_names_existing_columns(tmp_path):
    path = tmp_path / "d.csv"
    pd.DataFrame({"body": ["a b c d"], "topic": ["x"]}).to_csv(path, index=False)
    with pytest.raises(SourceError, match=r"no text column 'text'; columns are \['body', 'topic'\]"):
        TextFiles(FilesConfig(path=str(path))).load()
    with pytest.raises(SourceError, match=r"no domain column 'field'"):
        TextFiles(FilesConfig(path=str(path), text_column="body", domain_column="field")).load()


def test_only_empty_texts_is_an_error(tmp_path):
    path = tmp_path / "d.csv"
    pd.DataFrame({"text": ["   ", "\t"], "domain": ["a", "b"]}).to_csv(path, index=False)
    with pytest.raises(SourceError, match="all 2 texts are empty"):
        TextFiles(FilesConfig(path=str(path))).load()
    (tmp_path / "header_only.csv").write_text("text\n")
    with pytest.raises(SourceError, match="holds no texts"):
        TextFiles(FilesConfig(path=str(tmp_path / "header_only.csv"))).load()


def test_numeric_text_column_is_named_not_called_empty(tmp_path):
    path = tmp_path / "d.csv"
    pd.DataFrame({"text": [1, 2, 3], "body": ["a b c d"] * 3}).to_csv(path, index=False)
    with pytest.raises(
        SourceError,
        match=r"d.csv: text column 'text' holds numbers \(int64\), not texts; "
        r"set domain.text_column .*'body'",
    ):
        TextFiles(FilesConfig(path=str(path))).load()
    assert TextFiles(FilesConfig(path=str(path), text_column="body")).load().texts == ["a b c d"] * 3


def test_a_json_value_that_is_no_text_is_named_by_its_line_not_called_empty(tmp_path):
    """sae-embed over a jsonl with {"text": 5} beside texts dropped the 5 with a warning that it
    skipped 1 empty text, and embedded the rest: a wrong file read as a smaller corpus."""
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "a b c d"}\n\n{"text": null}\n{"text": 5}\n{"text": "e f g"}\n')
    res = run_script(
        "sae-embed",
        "domain=files",
        f"domain.path={path}",
        f"paths.cache_dir={tmp_path / 'cache'}",
        f"paths.log_dir={tmp_path / 'logs'}",
    )
    assert res.code == 2 and res.err.splitlines() == [
        f"error: {path} line 4: the text column 'text' holds 5 (int), not text; write it as a string or remove it"
    ], res.err
    assert not list((tmp_path / "cache").rglob("manifest.json"))
    path.write_text('{"text": "a b c d"}\n{"text": null}\n')  # null is a missing text: skipped like an empty one
    assert TextFiles(FilesConfig(path=str(path))).load().texts == ["a b c d"]


def test_missing_and_unparseable_files(tmp_path):
    with pytest.raises(SourceError, match="no such csv/tsv/jsonl/parquet file"):
        TextFiles(FilesConfig(path=str(tmp_path / "nope.csv"))).load()
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"this is not parquet")
    with pytest.raises(SourceError, match="bad.parquet cannot be parsed as parquet"):
        TextFiles(FilesConfig(path=str(bad))).load()
    latin = tmp_path / "latin.csv"  # was a UnicodeDecodeError traceback: pandas reads when its reader is made
    latin.write_bytes("Zürich\nA city in Switzerland\n".encode("latin-1"))  # the header, read first
    with pytest.raises(SourceError, match=r"latin.csv cannot be parsed as csv: 'utf-8' codec .*; save it as UTF-8$"):
        TextFiles(FilesConfig(path=str(latin))).load()


def test_hf_save_to_disk_folder(tmp_path):
    import datasets

    ds = datasets.Dataset.from_dict(
        {"text": ["Stars burn hydrogen into helium.", "Loss goes down with data."], "label": ["astro", "ml"]}
    )
    ds.save_to_disk(str(tmp_path / "ds"))
    corpus = HFDataset(HFConfig(path=str(tmp_path / "ds"), domain_column="label")).load()
    assert corpus.domains == ["astro", "ml"]
    with pytest.raises(SourceError, match=r"no column 'abstract'; columns are \['text', 'label'\]"):
        HFDataset(HFConfig(path=str(tmp_path / "ds"), text_column="abstract")).load()
    with pytest.raises(SourceError, match="cannot be loaded"):
        HFDataset(HFConfig(path=str(tmp_path / "missing"))).load()


def test_npy_validation(tmp_path):
    good = tmp_path / "good.npy"
    np.save(good, np.random.default_rng(0).normal(size=(10, 8)).astype(np.float32))
    assert load_npy(good).shape == (10, 8)
    for name, arr, msg in [
        ("one_d.npy", np.zeros(5, np.float32), "expected a 2-D float array"),
        ("ints.npy", np.zeros((3, 2), np.int64), "expected a 2-D float array"),
    ]:
        np.save(tmp_path / name, arr)
        with pytest.raises(SourceError, match=msg):
            load_npy(tmp_path / name)
    (tmp_path / "junk.npy").write_bytes(b"junk")  # numpy's own line: "pickled (object) data ... allow_pickle="
    with pytest.raises(SourceError, match=r"junk.npy is not a .npy file \(no numpy header\); point domain.path at"):
        load_npy(tmp_path / "junk.npy")
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object))
    with pytest.raises(SourceError, match="objects.npy is not a readable .npy file"):
        load_npy(tmp_path / "objects.npy")
    meta = tmp_path / "meta.csv"
    pd.DataFrame({"text": ["a"] * 9}).to_csv(meta, index=False)
    with pytest.raises(SourceError, match="has 9 rows but .* has 10 embeddings"):
        NpyEmbeddings(NpyConfig(path=str(good), metadata=str(meta))).load_metadata(10)


def test_build_source_names_a_required_knob_left_unset(tmp_path):
    """sae-diff composes its groups without the command's validation: the build names the ??? itself."""
    cfg = compose_cfg(["domain=files"], tmp_path, tmp_path)
    with pytest.raises(UserError, match=r"^domain.path is required: pass domain.path=<a file or folder>$"):
        build_source(cfg.domain)
