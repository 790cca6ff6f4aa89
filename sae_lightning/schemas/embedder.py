"""The `embedder` group: how texts become vectors (data/embed.py's Embedder is this schema plus the
methods that embed). Each field states its default, type, meaning and range once; conf/embedder/
minilm.yaml is a preset on top, and mpnet.yaml a preset on minilm."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from .knobs import MAX_THREADS, POSITIVE, Rule, check_fields, flag, knob, one_of, text, whole

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"  # packaged offline weights
COMPUTE_DTYPES = ("auto", "float32", "bfloat16", "float16")
DEVICE = r"cpu|cuda(:\d+)?|mps"


def _devices(v: Any) -> bool:
    # one worker process per entry: bounded as every count of processes is
    return (
        isinstance(v, Sequence)
        and not isinstance(v, str)
        and 0 < len(v) <= MAX_THREADS
        and all(isinstance(d, str) and re.fullmatch(DEVICE, d) for d in v)
    )


@dataclass
class EmbedderConfig:
    """Sentence-transformers embedding stage; every field but device, devices, shard_size and
    show_progress keys the embedding store."""

    TARGET: ClassVar[str] = "sae_lightning.data.embed.Embedder"  # what Hydra builds from the node

    model: str = knob(DEFAULT_MODEL, "packaged offline weights; or a local folder, or a hub id", text())
    batch_size: int = knob(
        32, "texts per encode call (32: 15-18 % faster than 128 on CPU, fp32 and bf16; GPUs want 256+)", POSITIVE
    )
    normalize: bool = knob(False, "unit-normalise embeddings before storing", flag())
    dtype: str = knob(
        "float32", "on disk (float16 halves the store; batches are float32)", one_of("float32", "float16")
    )
    dtype_compute: str = knob(
        "auto",
        "weights while encoding: auto (bfloat16 where the device has native bf16, "
        "else float32), float16 on GPUs only; keys the store when not float32",
        one_of(*COMPUTE_DTYPES),
    )
    max_seq_length: int | None = knob(
        None, "truncate longer texts to this many tokens (null: the model's own limit)", whole(1, null=True)
    )
    shard_size: int = knob(4096, "texts per shard: the unit of resume after an interruption", POSITIVE)
    device: str | None = knob(
        None,
        "where the model runs (null: the best available)",
        Rule(
            "cpu, cuda, cuda:N or mps, or null",
            lambda v: isinstance(v, str) and re.fullmatch(DEVICE, v) is not None,
            True,
        ),
    )
    devices: list[str] | None = knob(
        None,
        "one sentence-transformers worker process per entry, e.g. [cuda:0, cuda:1] (null: one process on `device`)",
        Rule(f"a list of up to {MAX_THREADS} cpu / cuda:N devices such as [cuda:0, cuda:1], or null", _devices, True),
    )
    show_progress: bool = knob(True, "a progress bar while embedding", flag())

    def __post_init__(self) -> None:
        check_fields(self, "embedder")
        self.devices = [str(d) for d in self.devices] if self.devices else None
