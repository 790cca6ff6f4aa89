"""The two sides of a diff: which texts a group spec means, and their embeddings in batches.

A group spec is one of
    Mathematics                       a domain of the run's store
    "Mathematics,Physical sciences"   several of them (comma-separated)
    domain=wiki_history               any `domain/` config, composed with Hydra like sae-train's,
    "domain=files domain.path=x.csv domain.text_column=abstract"   with overrides (space-separated)
Store domains are read from the run's memory-mapped store; other sources are embedded through the
run's own model and options (the store's manifest says which), in batches.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from ..data.embed import Embedder, canonical_model_name
from ..data.sources import NpyEmbeddings, build_source, load_npy
from ..data.store import EmbeddingStore
from ..errors import UserError
from ..schemas.knobs import clipped


@dataclass
class Group:
    """One side of a diff. `rows` are store rows (store groups); `batches` yields embeddings of
    texts in order, `batch_size` at a time, for either kind."""

    name: str
    texts: np.ndarray  # [n] str
    domains: np.ndarray  # [n] str: each text's own domain (several for a list of domains)
    batches: Callable[[int], Iterator[np.ndarray]]
    store_domains: tuple[str, ...] = ()  # non-empty for a group of the run's store

    def __len__(self) -> int:
        return len(self.texts)


def store_group(store: EmbeddingStore, names: list[str], label: str | None = None) -> Group:
    meta = store.metadata()
    known = sorted(meta["domain"].astype(str).unique())
    unknown = [n for n in names if n not in known]
    if unknown:  # both cut short: a mistyped group can be any length, a store can have thousands of domains
        asked = ", ".join(unknown)
        shown = clipped(asked)
        listed = ", ".join(known[:20]) + (f", ... ({len(known)} in all)" if len(known) > 20 else "")
        raise UserError(
            f"group {shown!r} matches no texts: the run's store has the domains "
            f"{listed}; give one of them, several comma-separated, or domain=<config>"
        )
    rows = np.flatnonzero(meta["domain"].astype(str).isin(names).to_numpy())

    def batches(size: int) -> Iterator[np.ndarray]:
        for start in range(0, len(rows), size):
            yield np.asarray(store.embeddings[rows[start : start + size]], dtype=np.float32)

    return Group(
        label or ",".join(names),
        meta["text"].to_numpy()[rows].astype(str),
        meta["domain"].to_numpy()[rows].astype(str),
        batches,
        tuple(names),
    )


# What a group spec may set: its source and which of its texts a limit keeps. The run's own model
# and embedder options embed it (embedder / embedder.model only to say which: checked to be the run's).
GROUP_KEYS = ("domain", "seed", "embedder", "embedder.model")


def _compose_source(spec: str, overrides: list[str]):
    """The group's config, its `domain` and `seed` checked by the rules sae-train's are. Anything
    else (sae=relu, embedder.batch_size=0, +foo=1, +domain.limt=5) was composed and then ignored."""
    from ..hydra_setup import check_choices, compose_config, register_hydra
    from ..validate import check_config, leaf_keys

    register_hydra()
    check_choices(overrides)
    for override in overrides:
        key = override.split("=", 1)[0].lstrip("+~")
        if key not in GROUP_KEYS and not key.startswith("domain."):
            raise UserError(
                f"group {spec!r}: {key} is no setting of a group, which takes domain=<config>, "
                "domain.<setting>=... and seed= (the run's own model embeds it); drop it"
            )
    try:
        cfg = compose_config("config", overrides)
    except UserError as err:  # Hydra's override and missing-key errors, as one line
        raise UserError(f"group {spec!r} cannot be composed: {err}") from None
    check_config(cfg, skip=tuple(k for k in leaf_keys(cfg) if k != "seed" and not k.startswith("domain.")))
    return cfg


def _check_model(spec: str, group_model: str, run_model: str) -> None:
    if canonical_model_name(group_model) != canonical_model_name(run_model):
        raise UserError(
            f"group {spec!r} is encoded by {group_model} but the run's SAE was trained on {run_model} "
            "embeddings; embed the group with the run's model (drop the embedder/model_name override)"
        )


def source_group(spec: str, store: EmbeddingStore, seed: int = 0) -> Group:
    """A group from a `domain/` config (with overrides), embedded like the run's store."""
    try:
        overrides = shlex.split(spec)
    except ValueError as err:  # an unclosed quote
        raise UserError(f"group {spec!r} cannot be read ({err}); close its quotes") from None
    if not any(o.startswith("seed=") for o in overrides):
        overrides.append(f"seed={seed}")
    cfg = _compose_source(spec, overrides)
    run_model = store.model_name
    source = build_source(cfg.domain)
    name = str(cfg.domain.get("name") or spec)
    if isinstance(source, NpyEmbeddings):
        _check_model(spec, source.cfg.model_name, run_model)
        arr = load_npy(source.path)
        n = source.rows(arr.shape[0])
        if arr.shape[1] != store.dim:
            raise UserError(f"group {spec!r} holds {arr.shape[1]}-dim embeddings but the run's are {store.dim}-dim")
        meta = source.load_metadata(arr.shape[0]).iloc[:n]

        def npy_batches(size: int) -> Iterator[np.ndarray]:
            for start in range(0, n, size):
                yield np.asarray(arr[start : min(start + size, n)], dtype=np.float32)

        return Group(name, meta["text"].to_numpy().astype(str), meta["domain"].to_numpy().astype(str), npy_batches)
    if "embedder" in cfg and any(o.startswith("embedder") for o in overrides):
        _check_model(spec, str(cfg.embedder.model), run_model)
    corpus = source.load()
    opts = dict(store.manifest.get("embedder") or {})
    embedder = Embedder(
        model=run_model,
        normalize=bool(store.manifest.get("normalized", False)),
        show_progress=False,
        dtype_compute=store.compute_dtype,
        **{k: opts[k] for k in ("batch_size", "max_seq_length") if k in opts},
    )  # as the run's store was embedded
    texts = np.asarray(corpus.texts, dtype=object).astype(str)

    def text_batches(size: int) -> Iterator[np.ndarray]:
        for start in range(0, len(texts), size):
            yield embedder.encode(list(texts[start : start + size]))

    return Group(name, texts, np.asarray(corpus.domains).astype(str), text_batches)


def resolve_group(spec: str, store: EmbeddingStore, seed: int = 0) -> Group:
    spec = spec.strip()
    names = [s.strip() for s in spec.split(",") if s.strip()]
    if not names:  # "" and "," alike (',' was a group '' that 'matches no texts; check its source')
        raise UserError("an empty group: give a domain of the run's store, several comma-separated, or domain=<config>")
    if spec.startswith("domain="):
        return source_group(spec, store, seed)
    return store_group(store, names)


def check_groups(a: Group, b: Group, min_texts: int) -> None:
    """Refuse, in one line each, what would make the test meaningless."""
    shared_domains = sorted(set(a.store_domains) & set(b.store_domains))
    if shared_domains:
        raise UserError(
            f"the groups overlap: domain {shared_domains[0]!r} is in both {a.name!r} and {b.name!r}; "
            "give each domain to one side only"
        )
    if not (a.store_domains and b.store_domains):  # a source group: overlap is the same text on both sides
        shared = set(a.texts.tolist()) & set(b.texts.tolist())
        if shared:
            raise UserError(
                f"the groups overlap: {len(shared)} texts are in both {a.name!r} and {b.name!r} "
                f"(e.g. {sorted(shared)[0][:60]!r}); give two disjoint groups"
            )
    for g in (a, b):
        check_size(g, min_texts)


def check_size(g: Group, min_texts: int) -> None:
    if len(g) == 0:
        raise UserError(f"group {g.name!r} matches no texts; check its source and filters")
    if len(g) < min_texts:
        raise UserError(
            f"group {g.name!r} has {len(g)} texts, fewer than the {min_texts} the test needs; "
            "give a larger group, or lower --min-texts"
        )
