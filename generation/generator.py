"""A backbone and SAR loaded once and reused for many generations (batch runs, evaluation).

Why: loading the diffusion backbone and SAR (graph, features, checkpoint, index) costs far more than
one small generation; `generation.api.generate` loads both on every call, which is right for one
video and wasteful for a hundred. `Generator` loads them once (`generation.api.load_pipeline`, so
the backbone is set up exactly as for a single call) and hands them to `generate` for each request.
"""

from __future__ import annotations

import time
from pathlib import Path

from generation.api import GenerationResult, generate, load_pipeline
from generation.backbones import BackboneError
from generation.request import GenerationRequest, RequestError
from generation.rewrite import PromptRewriter, rewriter_from_settings
from kb.store import GraphStore
from kdcvg.config import Settings, load_settings
from retrieval.api import load_sar

MODEL_HINT = (
    "`make demo` trains the demo backbone there (or run `kdcvg generation train-demo`); "
    "or point --model / KDCVG_GENERATION_MODEL at a local diffusers text-to-video pipeline directory"
)


def require_model_dir(model_dir: Path) -> Path:
    """The backbone folder, or a BackboneError saying how to get one (the usual first-run problem)."""
    model_dir = Path(model_dir).expanduser()
    if not model_dir.is_dir():
        raise BackboneError(f"no generation backbone at {model_dir}: {MODEL_HINT}")
    return model_dir


class Generator:
    """The configured backbone and SAR, loaded once; `generate` runs one request with them."""

    def __init__(self, model_dir: Path, settings: Settings | None = None, *, store: GraphStore | None = None) -> None:
        self.settings = settings or load_settings()
        self.store = store  # None: each generation opens the configured store to record its provenance
        self.model_dir = require_model_dir(model_dir)
        started = time.perf_counter()
        self.sar = load_sar(self.settings, store=store)  # first: a missing SAR checkpoint fails before the heavy load
        self.rewriter = rewriter_from_settings(self.settings)  # a misconfigured prompt LLM fails early too
        loaded_sar = time.perf_counter()
        self.pipe = load_pipeline(self.model_dir, self.settings)
        self.load_timings = {"load_sar_s": loaded_sar - started, "load_model_s": time.perf_counter() - loaded_sar}

    def generate(
        self, request: GenerationRequest, *, scratch_dir: Path | None = None, rewriter: PromptRewriter | None = None
    ) -> GenerationResult:
        """`generation.api.generate` with the loaded backbone and SAR; a request for another backbone is refused.

        `rewriter` replaces the configured one for this request (the evaluation's ablation rows prompt like plain).
        """
        if request.model is not None and Path(request.model).resolve() != self.model_dir.resolve():
            raise RequestError([("model", f"this run has loaded the backbone {self.model_dir}, not {request.model}")])
        return generate(
            self.settings, request.model_copy(update={"model": self.model_dir}), store=self.store,
            pipe=self.pipe, sar=self.sar, scratch_dir=scratch_dir, rewriter=rewriter or self.rewriter,
        )  # fmt: skip
