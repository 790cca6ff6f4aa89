"""A sentence-transformers BERT model run by torch alone, for the commands that embed a few queries.

Importing sentence-transformers and transformers takes most of `sae-search`'s start-up (about 5 of
its 6.5 s on 2 cores; benchmarks/RESULTS.md, the start-up section), for a forward pass that is a
dozen torch calls. For a model folder of the common shape, Transformer (a BERT with absolute
positions and GELU) -> mean Pooling -> optional Normalize, and no prompts, `load` reads its
safetensors weights and its tokenizer.json (the Rust tokenizer, the same one
sentence-transformers' fast tokenizer runs) and computes what `SentenceTransformer.encode` does,
to float32 rounding (tests/test_lean_encoder.py). Any other folder gets None, and its callers load
the model with sentence-transformers as before. all-MiniLM-L6-v2, the default, has this shape.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

TRANSFORMER, POOLING, NORMALIZE = (
    f"sentence_transformers.models.{name}" for name in ("Transformer", "Pooling", "Normalize")
)
MEAN_ONLY = {"pooling_mode_mean_tokens": True}  # every other pooling_mode_* false or absent
BATCH = 32  # texts per forward, sorted by length (as sentence-transformers batches them)


def _read(path: Path) -> dict | list | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


@dataclass
class Shape:
    """What the folder's configs say the forward pass is, once read."""

    config: dict  # config.json: the BERT's sizes
    max_seq_length: int  # sentence_bert_config.json: longer texts are truncated
    normalize: bool  # modules.json ends in Normalize


def _shape(root: Path) -> Shape | None:
    """The folder's shape where it is the one this module computes exactly, else None
    (sentence-transformers then loads it)."""
    modules = _read(root / "modules.json")
    if not isinstance(modules, list) or not modules:
        return None
    kinds = [m.get("type") for m in modules]
    if kinds not in ([TRANSFORMER, POOLING], [TRANSFORMER, POOLING, NORMALIZE]) or modules[0].get("path"):
        return None
    pooling = _read(root / modules[1].get("path", "") / "config.json")
    pooling = pooling if isinstance(pooling, dict) else {}
    modes = {k: v for k, v in pooling.items() if k.startswith("pooling_mode") and v}
    if modes != MEAN_ONLY:
        return None
    config, st_config = _read(root / "config.json"), _read(root / "sentence_bert_config.json")
    st_model = _read(root / "config_sentence_transformers.json") or {}
    ok = (
        isinstance(config, dict)
        and config.get("model_type") == "bert"
        and config.get("hidden_act") == "gelu"
        and config.get("position_embedding_type", "absolute") == "absolute"
        and isinstance(st_config, dict)
        and isinstance(st_config.get("max_seq_length"), int)
        and not st_config.get("do_lower_case")  # the tokenizer's own normaliser lowercases where it should
        and not st_model.get("prompts")
        and not st_model.get("default_prompt_name")
        and (root / "model.safetensors").is_file()
        and (root / "tokenizer.json").is_file()
    )
    return Shape(config, st_config["max_seq_length"], kinds[-1] == NORMALIZE) if ok else None


class LeanEncoder:
    """`encode` as `SentenceTransformer.encode` computes it for this folder's model, float32, CPU."""

    def __init__(self, root: Path, shape: Shape) -> None:
        from safetensors.torch import load_file
        from tokenizers import Tokenizer

        config = shape.config
        self.heads, self.layers = config["num_attention_heads"], config["num_hidden_layers"]
        self.eps = config["layer_norm_eps"]
        weights = load_file(str(root / "model.safetensors"))
        # Saved from BertModel (no prefix) or from a model holding one ("bert.")
        prefix = "" if "embeddings.word_embeddings.weight" in weights else "bert."
        self.w = {k[len(prefix) :]: v.float() for k, v in weights.items() if k.startswith(prefix)}
        self.tokenizer = Tokenizer.from_file(str(root / "tokenizer.json"))
        self.tokenizer.enable_truncation(shape.max_seq_length)
        self.tokenizer.no_padding()
        self.normalize = shape.normalize

    def _norm(self, x: torch.Tensor, name: str) -> torch.Tensor:
        return F.layer_norm(x, x.shape[-1:], self.w[f"{name}.weight"], self.w[f"{name}.bias"], self.eps)

    def _linear(self, x: torch.Tensor, name: str) -> torch.Tensor:
        return F.linear(x, self.w[f"{name}.weight"], self.w[f"{name}.bias"])

    @torch.inference_mode()
    def _forward(self, ids: torch.Tensor, types: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Token ids, type ids and the attention mask [b, n] -> mean-pooled embeddings [b, d]."""
        b, n = ids.shape
        w = self.w
        x = w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][:n]
        x = self._norm(x + w["embeddings.token_type_embeddings.weight"][types], "embeddings.LayerNorm")
        keep = mask.bool()[:, None, None, :]  # padding is attended by no token
        for i in range(self.layers):
            layer = f"encoder.layer.{i}"
            q, k, v = (
                self._linear(x, f"{layer}.attention.self.{p}").view(b, n, self.heads, -1).transpose(1, 2)
                for p in ("query", "key", "value")
            )
            a = F.scaled_dot_product_attention(q, k, v, attn_mask=keep).transpose(1, 2).reshape(b, n, -1)
            a = self._linear(a, f"{layer}.attention.output.dense")
            x = self._norm(a + x, f"{layer}.attention.output.LayerNorm")
            h = F.gelu(self._linear(x, f"{layer}.intermediate.dense"))
            x = self._norm(self._linear(h, f"{layer}.output.dense") + x, f"{layer}.output.LayerNorm")
        m = mask[..., None].float()
        return (x * m).sum(1) / m.sum(1).clamp(min=1e-9)

    def encode(
        self,
        texts: list[str],
        convert_to_numpy: bool = True,
        normalize_embeddings: bool = False,
        show_progress_bar: bool = False,
    ) -> np.ndarray:
        """[len(texts), d] float32, as SentenceTransformer.encode(texts, convert_to_numpy=True, ...)
        returns for this model (the signature's subset search.embed_query calls; no progress bar)."""
        encs = self.tokenizer.encode_batch(list(texts))
        order = sorted(range(len(encs)), key=lambda i: -len(encs[i].ids))
        out = torch.zeros(len(encs), self.w["embeddings.word_embeddings.weight"].shape[1])
        for s in range(0, len(order), BATCH):
            idx = order[s : s + BATCH]
            n = max(len(encs[i].ids) for i in idx)
            ids, types, mask = (torch.zeros(len(idx), n, dtype=torch.long) for _ in range(3))
            for row, i in enumerate(idx):
                e = encs[i]
                ids[row, : len(e.ids)], types[row, : len(e.ids)], mask[row, : len(e.ids)] = (
                    torch.tensor(e.ids),
                    torch.tensor(e.type_ids),
                    1,
                )
            out[idx] = self._forward(ids, types, mask)
        if self.normalize or normalize_embeddings:
            out = F.normalize(out, dim=-1)
        return out.numpy()


@lru_cache(maxsize=4)
def load(path: str) -> LeanEncoder | None:
    """The folder's model as a LeanEncoder, cached per process; None where its shape is not the
    one above (the caller then loads it with sentence-transformers)."""
    root = Path(path)
    shape = _shape(root) if root.is_dir() else None
    if shape is None:
        return None
    try:
        return LeanEncoder(root, shape)
    except Exception:  # unreadable weights or tokenizer: sentence-transformers' load says what is wrong, in one line
        return None
