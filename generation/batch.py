"""Batch generation from a JSON-lines request file: validate every line first, then generate each.

Why: a campaign needs many videos; one bad line must not be found after an hour of generation, and
one failing request must not lose the others' results. A request file has one JSON object per line
(blank lines are skipped):

    {"product": "prod-thermopeak-insulated-bottle", "selling_point": "Leak-proof lid", "seed": 3}

Fields: `product` and `selling_point` (id or exact text) are required; `k`, `seed`,
`motion_strength`, `motion_prior` ("spectral", "inversion" or "noise_prior"), `frames`, `size` (width = height), `steps`,
`motion_lora` (a MotionLora id, or "auto") and `motion_lora_scale` are optional and default to
`defaults` (the command line's options) or to `BatchRequest`'s own defaults. Every problem in the
file is reported at once as `FILE:LINE:FIELD: reason`, and the products and selling points are
checked against the graph and frames and size against the backbone family, all before the first
video is generated.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from tqdm import tqdm

from generation.backbones import BackboneFamily
from generation.generator import Generator
from generation.pipeline import MAX_FRAMES, MAX_SIZE, METHODS, MIN_SIZE, SIZE_MULTIPLE, GenerationError, validate_request
from generation.prompt import resolve_selling_point
from kb.graph import AckbGraph
from kdcvg.errors import BadInputError, KdcvgError
from retrieval.api import MAX_K


class BatchError(BadInputError):
    """The request file (or the defaults) is invalid; `problems` holds every `FILE:LINE:FIELD: reason`."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class BatchRequest(BaseModel):
    """One line of a request file, type- and range-checked (strict: "3" is not a number, true is not 1)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    product: str = Field(min_length=1)
    selling_point: str = Field(min_length=1)
    k: int = Field(3, ge=1, le=MAX_K)
    seed: int = Field(0, ge=0)
    motion_strength: float | None = Field(None, ge=0.0, le=1.0)  # None: the motion prior's default
    motion_prior: Literal[METHODS] = "spectral"
    frames: int = Field(8, ge=1, le=MAX_FRAMES)
    size: int = Field(64, ge=MIN_SIZE, le=MAX_SIZE, multiple_of=SIZE_MULTIPLE)
    steps: int = Field(4, ge=1)
    motion_lora: str | None = Field(None, min_length=1, max_length=200)  # a MotionLora id, or "auto"; None: no LoRA
    motion_lora_scale: float = Field(1.0, ge=0.0, le=2.0)

    def options(self) -> dict[str, Any]:
        """The keyword arguments of `generation.api.generate` for this request."""
        return {"k": self.k, "seed": self.seed, "motion_strength": self.motion_strength, "motion_prior": self.motion_prior, "num_frames": self.frames,
                "height": self.size, "width": self.size, "steps": self.steps, "motion_lora": self.motion_lora,
                "motion_lora_scale": self.motion_lora_scale}  # fmt: skip


@dataclass(frozen=True)
class NumberedRequest:
    """A validated request and the line of the file it came from."""

    line: int
    request: BatchRequest


def _field_problems(error: ValidationError, where: str) -> list[str]:
    """`where:FIELD: reason` for each pydantic error."""
    return [f"{where}:{'.'.join(map(str, e['loc'])) or '(line)'}: {e['msg']}" for e in error.errors()]


def read_requests(path: Path, defaults: dict[str, Any] | None = None) -> list[NumberedRequest]:
    """Parse and validate every line of `path`; raise BatchError listing all problems, or return the requests."""
    path = Path(path)
    defaults = dict(defaults or {})
    try:
        BatchRequest(product="-", selling_point="-", **defaults)
    except ValidationError as error:
        raise BatchError([p.replace("defaults:", "command line: --", 1) for p in _field_problems(error, "defaults")]) from None
    if not path.is_file():
        raise BatchError([f"{path}: no such request file"])
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as error:
        raise BatchError([f"{path}: not UTF-8 text ({error.reason})"]) from None
    requests: list[NumberedRequest] = []
    problems: list[str] = []
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        where = f"{path}:{number}"
        try:
            value = json.loads(text)
        except json.JSONDecodeError as error:
            problems.append(f"{where}: not valid JSON ({error.msg} at column {error.colno})")
            continue
        if not isinstance(value, dict):
            problems.append(f"{where}: expected a JSON object, got {type(value).__name__}")
            continue
        try:
            requests.append(NumberedRequest(number, BatchRequest.model_validate({**defaults, **value})))
        except ValidationError as error:
            problems.extend(_field_problems(error, where))
    if not problems and not requests:
        problems.append(f"{path}: no requests (one JSON object per line)")
    if problems:
        raise BatchError(problems)
    return requests


def check_requests(
    path: Path, requests: list[NumberedRequest], graph: AckbGraph, family: BackboneFamily, lora_ids: set[str] | None = None
) -> None:
    """Raise BatchError naming every request the graph (product, selling point, MotionLora ids when `lora_ids` is
    given) or the backbone (frames, size) rejects."""
    problems: list[str] = []
    for item in requests:
        where, request = f"{path}:{item.line}", item.request
        if lora_ids is not None and request.motion_lora not in (None, "auto") and request.motion_lora not in lora_ids:
            problems.append(f"{where}:motion_lora: no MotionLora with id {request.motion_lora!r}")
        try:
            validate_request(request.frames, request.size, request.size, request.steps, family)
        except GenerationError as error:
            problems.append(f"{where}:frames/size: {error}")
        if request.product not in graph.index("Product"):
            problems.append(f"{where}:product: no Product with id {request.product!r}")
            continue
        try:
            resolve_selling_point(graph, request.product, request.selling_point)
        except KdcvgError as error:
            problems.append(f"{where}:selling_point: {error_message(error)}")
    if problems:
        raise BatchError(problems)


def error_message(error: BaseException) -> str:
    """An exception as one readable line (a KeyError's message without its repr quotes)."""
    if isinstance(error, KeyError) and error.args:
        return str(error.args[0])
    return str(error) or type(error).__name__


def run_batch(
    generator: Generator,
    requests: list[NumberedRequest],
    emit: Callable[[dict[str, Any]], None],
    *,
    progress: bool = False,
) -> list[dict[str, Any]]:
    """Generate every request in order, `emit` each result as soon as it exists; a failure is a result too.

    A result is `{"line", "ok", "request", ...}` with `video_id`, `video_path`, `sidecar_path`,
    `reference_clips` and `timings` when it worked, `error` (type and message) when it did not.
    """
    results: list[dict[str, Any]] = []
    with tqdm(total=len(requests), desc="generate", unit="video", file=sys.stderr, disable=not progress) as bar:
        for item in requests:
            record: dict[str, Any] = {"line": item.line, "request": item.request.model_dump()}
            try:
                result = generator.generate(item.request.product, item.request.selling_point, **item.request.options())
            except Exception as error:  # noqa: BLE001 - one failed request must not lose the others
                record.update(ok=False, error=f"{type(error).__name__}: {error_message(error)}")
            else:
                record.update(
                    ok=True, video_id=result.video_id, video_path=str(result.video_path), sidecar_path=str(result.sidecar_path),
                    reference_clips=result.reference_clips, timings=result.timings,
                )  # fmt: skip
            results.append(record)
            emit(record)
            bar.update()
    return results
