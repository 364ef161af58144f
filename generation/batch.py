"""Batch generation from a JSON-lines request file: validate every line first, then generate each.

Why: a campaign needs many videos; one bad line must not be found after an hour of generation, and
one failing request must not lose the others' results. A request file has one JSON object per line
(blank lines are skipped), and each line is a `generation.request.GenerationRequest`:

    {"product": "prod-thermopeak-insulated-bottle", "selling_point": "Leak-proof lid", "seed": 3}

`product` and `selling_point` (id or exact text) are required; every other field is optional and
defaults to `defaults` (the command line's options) or to the request's own defaults; `size` sets
width and height at once (docs/generation-request.md). Every problem in the file is reported at once
as `FILE:LINE:FIELD: reason`, and the products, selling points and motion LoRA ids (`motion_lora`: a
MotionLora id, or "auto") are checked against the graph and frames and size against the backbone
family, all before the first video is generated.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from generation.backbones import BackboneFamily, check_request
from generation.generator import Generator
from generation.prompt import resolve_selling_point
from generation.request import GenerationOptions, GenerationRequest, RequestError
from kb.graph import AckbGraph
from kdcvg.errors import BadInputError, KdcvgError


class BatchError(BadInputError):
    """The request file (or the defaults) is invalid; `problems` holds every `FILE:LINE:FIELD: reason`."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class NumberedRequest:
    """A validated request and the line of the file it came from."""

    line: int
    request: GenerationRequest


def read_requests(path: Path, defaults: GenerationOptions | None = None) -> list[NumberedRequest]:
    """Parse and validate every line of `path` over `defaults`; raise BatchError listing all problems, or return the requests."""
    path = Path(path)
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
            requests.append(NumberedRequest(number, GenerationRequest.parse(value, defaults)))
        except RequestError as error:
            problems.extend(f"{where}:{name}: {reason}" for name, reason in error.problems)
    if not problems and not requests:
        problems.append(f"{path}: no requests (one JSON object per line)")
    if problems:
        raise BatchError(problems)
    return requests


def check_requests(
    path: Path, requests: list[NumberedRequest], graph: AckbGraph, family: BackboneFamily, model_dir: Path | None = None,
    lora_ids: set[str] | None = None,
) -> None:
    """Raise BatchError naming every request the graph (product, selling point, MotionLora ids when `lora_ids` is
    given) or the loaded backbone (`model_dir`) rejects."""
    problems: list[str] = []
    for item in requests:
        where, request = f"{path}:{item.line}", item.request
        if lora_ids is not None and request.motion_lora not in (None, "auto") and request.motion_lora not in lora_ids:
            problems.append(f"{where}:motion_lora: no MotionLora with id {request.motion_lora!r}")
        if model_dir is not None and request.model is not None and request.model.resolve() != Path(model_dir).resolve():
            problems.append(f"{where}:model: the batch runs on one backbone, {model_dir}; this line asks for {request.model}")
        try:
            check_request(request, family)
        except RequestError as error:
            problems.extend(f"{where}:{name}: {reason}" for name, reason in error.problems)
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
            record: dict[str, Any] = {"line": item.line, "request": item.request.model_dump(mode="json")}
            try:
                result = generator.generate(item.request)
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
