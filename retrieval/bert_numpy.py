"""A BERT sentence encoder in numpy: embeds one query text without importing torch (about 3 s here).

Why: `kdcvg retrieve` embeds one typed-in selling point per call; loading torch and
sentence-transformers for that costs more than everything else the call does. What: the same
computation as sentence-transformers' Transformer (BERT) -> mean Pooling [-> Normalize] pipeline,
read from the model directory (config.json, model.safetensors, tokenizer.json). `supported(path)`
says whether a directory is such a pipeline; `retrieval.features.TextEncoder` falls back to
sentence-transformers for any other model.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

TRANSFORMER = "sentence_transformers.models.Transformer"
POOLING = "sentence_transformers.models.Pooling"
NORMALIZE = "sentence_transformers.models.Normalize"
_erf = np.frompyfunc(math.erf, 1, 1)


def _json(path: Path) -> dict | list | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def supported(model_path: Path) -> bool:
    """True when `model_path` is a BERT -> mean pooling (-> normalize) sentence-transformers directory with safetensors weights."""
    path = Path(model_path)
    modules, config = _json(path / "modules.json"), _json(path / "config.json")
    if not isinstance(modules, list) or not isinstance(config, dict):
        return False
    types = [m.get("type") for m in modules if isinstance(m, dict)]
    if types not in ([TRANSFORMER, POOLING], [TRANSFORMER, POOLING, NORMALIZE]) or modules[0].get("path", "") != "":
        return False
    pooling = _json(path / modules[1].get("path", "") / "config.json")
    mean_only = isinstance(pooling, dict) and pooling.get("pooling_mode_mean_tokens") is True and not any(
        v for k, v in pooling.items() if k.startswith("pooling_mode_") and k != "pooling_mode_mean_tokens"
    )
    return (
        mean_only
        and config.get("model_type") == "bert"
        and config.get("hidden_act") == "gelu"
        and config.get("position_embedding_type", "absolute") == "absolute"
        and (path / "model.safetensors").is_file()
        and (path / "tokenizer.json").is_file()
    )


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * weight + bias


class NumpyBert:
    """Embeds texts like the sentence-transformers pipeline in `model_path` (see `supported`)."""

    def __init__(self, model_path: Path) -> None:
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        path = Path(model_path)
        if not supported(path):
            raise ValueError(f"{path} is not a BERT mean-pooling sentence-transformers model this encoder can run")
        self.config = _json(path / "config.json")
        settings = _json(path / "sentence_bert_config.json") or {}
        modules = _json(path / "modules.json")
        self.normalize = len(modules) == 3
        weights = load_file(str(path / "model.safetensors"))
        prefix = "bert." if "bert.embeddings.word_embeddings.weight" in weights else ""
        self.w = {k[len(prefix) :]: v.astype(np.float32, copy=False) for k, v in weights.items() if k.startswith(prefix)}
        self.tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
        self.tokenizer.no_padding()
        limit = min(int(settings.get("max_seq_length") or self.config["max_position_embeddings"]), self.config["max_position_embeddings"])
        self.tokenizer.enable_truncation(limit)

    def _embed(self, text: str) -> np.ndarray:
        c, w = self.config, self.w
        eps, heads = c["layer_norm_eps"], c["num_attention_heads"]
        encoding = self.tokenizer.encode(text)
        ids, types = np.array(encoding.ids), np.array(encoding.type_ids)
        n, size = len(ids), c["hidden_size"]
        h = w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][:n] + w["embeddings.token_type_embeddings.weight"][types]
        h = _layer_norm(h, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], eps)
        dense = lambda x, name: x @ w[f"{name}.weight"].T + w[f"{name}.bias"]
        for i in range(c["num_hidden_layers"]):
            layer = f"encoder.layer.{i}"
            q, k, v = (dense(h, f"{layer}.attention.self.{part}").reshape(n, heads, -1).transpose(1, 0, 2) for part in ("query", "key", "value"))
            scores = q @ k.transpose(0, 2, 1) / math.sqrt(size // heads)
            scores = np.exp(scores - scores.max(-1, keepdims=True))
            context = ((scores / scores.sum(-1, keepdims=True)) @ v).transpose(1, 0, 2).reshape(n, size)
            a = _layer_norm(dense(context, f"{layer}.attention.output.dense") + h, *self._ln(f"{layer}.attention.output.LayerNorm"), eps)
            inner = dense(a, f"{layer}.intermediate.dense")
            inner = inner * 0.5 * (1.0 + _erf(inner / math.sqrt(2.0)).astype(np.float32))  # exact GELU, as BERT's "gelu"
            h = _layer_norm(dense(inner, f"{layer}.output.dense") + a, *self._ln(f"{layer}.output.LayerNorm"), eps)
        pooled = h.mean(axis=0)
        return pooled / max(float(np.linalg.norm(pooled)), 1e-12) if self.normalize else pooled

    def _ln(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        return self.w[f"{name}.weight"], self.w[f"{name}.bias"]

    def encode(self, texts: list[str]) -> np.ndarray:
        """(N, hidden) float32 embeddings (normalised when the pipeline normalises)."""
        return np.stack([self._embed(t) for t in texts]).astype(np.float32) if texts else np.zeros((0, self.config["hidden_size"]), np.float32)
