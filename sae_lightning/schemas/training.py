"""The `module` and `data` groups: how the SAE is optimised (training/module.py's SAEModule) and how
batches stream from the embedding store (data/datamodule.py's EmbeddingDataModule). Each field
states its default, type, meaning and range once; conf/module and conf/data are presets on top."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import UserError
from .knobs import POSITIVE, SEED, check_fields, flag, is_int, knob, list_of, number, one_of, threads, whole


def module_problem(module: Mapping[str, Any]) -> str | None:
    """The rule over two knobs of the group (the composed config and a ModuleConfig built in Python
    are checked by this same function): a query's neighbours are the other retrieval_queries - 1
    texts, so from k = retrieval_queries - 1 on, retrieval_recall@k is 1 whatever the SAE."""
    k, queries = module.get("retrieval_k"), module.get("retrieval_queries")
    if is_int(k) and is_int(queries) and k >= queries - 1:
        return (
            f"module.retrieval_k={k} retrieves every other one of module.retrieval_queries={queries} texts, so "
            "retrieval_recall@k would be 1 for any SAE; lower retrieval_k or raise retrieval_queries (k < queries - 1)"
        )
    return None


@dataclass
class ModuleConfig:
    """Optimisation of the SAE (the LightningModule)."""

    lr: float = knob(
        0.004,
        "Adam learning rate after warm-up (TopK 3072x384, batch 512: 4e-3 -> val fve 0.71; 8e-3 kills ~8% of latents)",
        number(0, lo_open=True),
    )
    betas: list[float] = knob(
        [0.9, 0.999],
        "Adam betas",
        list_of(number(0, 1, hi_open=True), "two numbers in [0, 1), e.g. [0.9, 0.999]", check=lambda v: len(v) == 2),
    )
    weight_decay: float = knob(
        0.0,
        "decoupled weight decay (AdamW) on W_enc and W_dec; 0: plain Adam (0.01 and 0.1 measured: no better)",
        number(0),
    )
    warmup_steps: int = knob(100, "linear learning-rate warm-up", whole(0))
    decay: str = knob("cosine", "decay over the last `decay_fraction` of training", one_of("none", "cosine", "linear"))
    decay_fraction: float = knob(0.2, "share of training spent decaying to zero", number(0, 1))
    retrieval_k: int = knob(10, "retrieval_recall@k at validation", POSITIVE)
    init_b_dec: str = knob(
        "geometric_median", "b_dec from a training sample before step 0", one_of("geometric_median", "mean")
    )
    init_sample_size: int = knob(8192, "training embeddings used for that init", POSITIVE)
    retrieval_queries: int = knob(2048, "validation rows used as queries (and corpus) for retrieval_recall@k", POSITIVE)
    max_weight_rms: float | None = knob(
        100.0,
        "stop as diverged when an update takes any SAE weight's rms above this (healthy W_enc ~ 1/sqrt(d_in))",
        number(0, lo_open=True, null=True),
    )

    def __post_init__(self) -> None:
        self.betas = list(self.betas)  # a ListConfig or tuple from the caller
        check_fields(self, "module")
        problem = module_problem(self.__dict__)
        if problem:
            raise UserError(problem)


SHUFFLES = ("auto", "full", "blocks")


@dataclass
class DataConfig:
    """Batches streamed from the memory-mapped embedding store."""

    batch_size: int = knob(
        512,
        "embeddings per training step (~57 steps per epoch on wiki_all sentences; 4096 gave 7 and fve 0.48)",
        POSITIVE,
    )
    val_batch_size: int = knob(8192, "embeddings per validation step", POSITIVE)
    val_fraction: float = knob(
        0.1, "held-out share for validation metrics and label scoring", number(0, 1, hi_open=True)
    )
    seed: int = knob(0, "fixes the split and the per-epoch order", SEED)
    num_workers: int = knob(0, "DataLoader worker processes (0: read in the training process)", threads(0))
    in_memory: bool = knob(False, "true: copy the whole store into RAM first", flag())
    drop_last: bool = knob(True, "drop the last, smaller training batch of each epoch", flag())
    shuffle: str = knob(
        "auto",
        "full: any row after any other, read through the memory map (RSS grows to the whole store); "
        "blocks: shuffle blocks of rows, then rows within a window of blocks, read into a bounded cache; auto: full "
        "for stores of at most block_rows x window_blocks rows (and with in_memory), blocks above",
        one_of(*SHUFFLES),
    )
    block_rows: int = knob(
        8192, "rows per contiguous block read at once (blocks mode; 6 MiB at 384 x float16)", POSITIVE
    )
    window_blocks: int = knob(
        32,
        "blocks shuffled together; the cache holds this window and the next one read ahead (2 x 32 x 6 MiB = 384 MiB)",
        POSITIVE,
    )

    def __post_init__(self) -> None:
        check_fields(self, "data")
