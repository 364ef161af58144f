"""One generation request: what to generate and every option, each with one name, default and range.

Why: the command line, batch lines, `generation.api.generate`, evaluation and the app all describe the
same generation; one model means one spelling per option, one validation and one error that names
the field at fault. `docs/generation-request.md` documents every field; the backbone's own rules
(frames 4·k + 1 for CogVideoX, sizes a multiple of 16) are checked by
`generation.backbones.check_request`, next to the family table.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from kdcvg.errors import BadInputError
from retrieval.api import MAX_K

MAX_FRAMES = 81  # the longest any backbone family takes (Wan 2.1); each family caps its own
MIN_SIZE, MAX_SIZE, SIZE_MULTIPLE = 32, 1024, 8
MAX_STEPS = 1000
MAX_GUIDANCE = 50.0
MAX_SEED = 2**63 - 1  # the graph stores the seed as a 64-bit integer
MAX_LORA_SCALE = 2.0
MAX_LORA_ID = 200
METHODS = ("spectral", "inversion", "noise_prior")
# Motion strength when none is given: the paper's reference intensity β ∈ [0.6, 0.8] for inversion.
DEFAULT_STRENGTH: dict[str, float] = {"spectral": 0.5, "inversion": 0.7, "noise_prior": 0.5}


class GenerationError(BadInputError):
    """The request cannot be generated: frame count, size, or arguments out of range."""


class RequestError(GenerationError):
    """A request failed validation; `problems` holds (field, reason) for every field at fault."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{name}: {reason}" for name, reason in problems))
        self.problems = problems

    def renamed(self, names: Mapping[str, str]) -> RequestError:
        """The same problems with fields renamed as the caller spells them (CLI flags, `size`), repeats merged."""
        problems = [(names.get(name, name), reason) for name, reason in self.problems]
        return RequestError(list(dict.fromkeys(problems)))


def _problems(error: ValidationError) -> list[tuple[str, str]]:
    """(field, reason with the value given) for each pydantic error."""
    problems = []
    for item in error.errors():
        name = ".".join(map(str, item["loc"])) or "(request)"
        given = "" if item["type"] in ("missing", "extra_forbidden") else f", got {item['input']!r}"
        problems.append((name, f"{item['msg']}{given}"))
    return problems


class GenerationOptions(BaseModel):
    """How to generate: every option of one generation except what (batch defaults and evaluation share it)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    model: Path | None = Field(
        None, strict=False, description="Local diffusers pipeline folder; None: Settings.generation_model_dir."
    )
    k: int = Field(3, ge=1, le=MAX_K, description="Reference clips SAR retrieves; the best one gives the motion.")
    seed: int = Field(0, ge=0, le=MAX_SEED, description="Seed of the initial noise: same request and seed, same frames.")
    motion_prior: Literal[METHODS] = Field(
        "spectral", description="spectral: low frequencies mixed into the noise; inversion: DDIM-inverted reference; noise_prior."
    )
    motion_strength: float | None = Field(
        None, ge=0.0, le=1.0, allow_inf_nan=False, description="0: plain text-to-video; None: the prior's default (DEFAULT_STRENGTH)."
    )
    frames: int = Field(8, ge=1, le=MAX_FRAMES, description="Frames of the video (the backbone may require 4·k + 1).")
    height: int = Field(64, ge=MIN_SIZE, le=MAX_SIZE, multiple_of=SIZE_MULTIPLE, description="Pixels (the backbone may require a multiple of 16).")
    width: int = Field(64, ge=MIN_SIZE, le=MAX_SIZE, multiple_of=SIZE_MULTIPLE, description="Pixels (the backbone may require a multiple of 16).")
    steps: int = Field(4, ge=1, le=MAX_STEPS, description="Denoising steps (also the inversion's steps).")
    guidance_scale: float = Field(7.5, ge=0.0, le=MAX_GUIDANCE, allow_inf_nan=False, description="Classifier-free guidance weight.")
    ip_adapter_scale: float = Field(
        0.5, ge=0.0, le=1.0, allow_inf_nan=False, description="Weight of the reference keyframe when an IP-Adapter is configured."
    )
    motion_lora: str | None = Field(
        None, min_length=1, max_length=MAX_LORA_ID,
        description="A MotionLora id, or 'auto': the newest one TRAINED_ON the best reference clip for this backbone.",
    )
    motion_lora_scale: float = Field(
        1.0, ge=0.0, le=MAX_LORA_SCALE, allow_inf_nan=False, description="Weight of the motion LoRA (0: none)."
    )

    @classmethod
    def parse(cls, data: Mapping[str, Any], defaults: GenerationOptions | None = None) -> Self:
        """Validate `data` over `defaults`; `size` stands for height and width; RequestError names each bad field."""
        values = dict(data)
        size_given = "size" in values
        if size_given:
            if "height" in values or "width" in values:
                raise RequestError([("size", "give size, or height and width, not both")])
            values["height"] = values["width"] = values.pop("size")
        base = defaults.model_dump() if defaults is not None else {}
        try:
            return cls.model_validate({**base, **values})
        except ValidationError as error:
            problem = RequestError(_problems(error))
            raise (problem.renamed({"height": "size", "width": "size"}) if size_given else problem) from None

    def frame_options(self) -> dict[str, Any]:
        """The keyword arguments of `generation.pipeline.generate_frames` for this request's size and sampler."""
        return {"num_frames": self.frames, "height": self.height, "width": self.width, "steps": self.steps,
                "guidance_scale": self.guidance_scale}  # fmt: skip

    def strength(self) -> float:
        """The motion strength to use: the one asked for, else the motion prior's default."""
        return DEFAULT_STRENGTH[self.motion_prior] if self.motion_strength is None else self.motion_strength


class GenerationRequest(GenerationOptions):
    """One video to generate: a product's selling point and the options; one line of a batch file."""

    product: str = Field(min_length=1, description="Product id.")
    selling_point: str = Field(min_length=1, description="Selling point id, or its exact text.")

    def recorded(self) -> dict[str, Any]:
        """What was asked, as provenance records it (JSON-ready; the backbone is recorded as its model id, not a path)."""
        return self.model_dump(mode="json", exclude={"model"})
