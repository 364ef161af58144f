"""generate(): one call from a product and a selling point to an mp4 with its provenance in the graph.

Reads top to bottom: SAR retrieves reference clips for the selling point → the semantic prior
builds the prompt from them (generation/prompt.py) → the backbone generates with the best
reference's motion injected into the initial noise (generation/pipeline.py) and, when an
IP-Adapter is configured (Settings.ip_adapter) for a backbone that supports it, its middle
keyframe as an image prompt (generation/ip_adapter.py) → the mp4 and a JSON
sidecar are written under `<data>/media/generated/` → a `GeneratedVideo` node links the clips it
REFERENCED and the selling point it was GENERATED_FOR. If recording fails, the files are removed.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from diffusers import DiffusionPipeline

from generation.backbones import BackboneFamily, backbone_family, check_request, detect_family, load_backbone
from generation.ip_adapter import IPAdapterFiles, loaded_ip_adapter, middle_keyframe
from generation.motion_lora import MotionLoraError, MotionLoraFile, backbone_sha256, loaded_lora, use_motion_lora
from generation.pipeline import GenerationError, generate_frames, write_mp4
from generation.prompt import PromptPlan, build_prompt, resolve_selling_point
from generation.provenance import motion_lora_by_id, motion_lora_for_clip, record_generation
from generation.reference_cache import ReferenceCache
from generation.request import GenerationRequest
from generation.rewrite import PromptRewriter, rewrite_plan, rewriter_from_settings
from kb.backends import open_store
from kb.interchange import sha256_file
from kb.store import GraphStore, NotFoundError
from kdcvg.config import Settings, load_settings
from retrieval.api import LoadedSar, load_sar, retrieve_for_selling_point

FPS = 8.0
# What the provenance repeats of how the applied motion LoRA was trained (its MotionLora node has it all).
LORA_TRAINING_FACTS = (
    "clip", "model_id", "rank", "alpha", "steps", "learning_rate", "seed", "num_frames", "width", "height", "loss",
    "loss_before", "loss_after", "trained_at",
)  # fmt: skip


@dataclass
class GenerationResult:
    """What a script gets back: the video, its sidecar, the priors used and the timings."""

    video_id: str
    video_path: Path
    sidecar_path: Path
    prompt: PromptPlan
    reference_clips: list[str]
    parameters: dict[str, Any]
    timings: dict[str, float] = field(default_factory=dict)


def load_pipeline(model_dir: Path, settings: Settings) -> DiffusionPipeline:
    """The backbone exactly as generate() loads it (generation.generator reuses it for batches and evaluation).

    The configured IP-Adapter (`settings.ip_adapter`) is loaded into families that support it.
    """
    family = detect_family(model_dir)
    adapter = settings.ip_adapter if settings.ip_adapter is not None and family.ip_adapter else None
    return load_backbone(model_dir, ip_adapter=adapter)


def generate(
    settings: Settings,
    request: GenerationRequest,
    *,
    store: GraphStore | None = None,
    pipe: DiffusionPipeline | None = None,
    sar: LoadedSar | None = None,
    scratch_dir: Path | None = None,
    rewriter: PromptRewriter | None = None,
) -> GenerationResult:
    """Generate the video `request` asks for (see `generation.request`); deterministic for a seed.

    `store`: the open store to read SAR's knowledge from and record provenance in (the app passes its
    shared one, so a generation does not hold it for its whole length); None opens the configured one.
    `pipe` and `sar` reuse a backbone (from `load_pipeline`) and SAR already loaded (generation.generator);
    with `scratch_dir` the files go there and no provenance is recorded (evaluation runs stay out of the graph).
    `rewriter` (default: the configured one, `Settings.prompt_rewriter`) finalises the graph prompt.
    With an IP-Adapter loaded (`settings.ip_adapter`, AnimateDiff backbones) the best reference clip's
    middle keyframe also conditions the video at `ip_adapter_scale`; the parameters record whether
    image conditioning was used, and why not when an adapter is configured but cannot apply.
    `motion_lora` is a MotionLora node's id, or "auto" for the newest one TRAINED_ON the best reference
    clip (the first with a video) for this backbone (`kdcvg generation train-motion-lora --clip ID`),
    applied at `motion_lora_scale` and linked from the provenance by USED_LORA {scale}. The provenance
    `parameters` hold `request` (what was asked) and what was resolved from it (motion prior, LoRA,
    image conditioning, prompt rewrite).
    """
    if not isinstance(request, GenerationRequest):
        raise TypeError(f"request must be a GenerationRequest, got {type(request).__name__}")
    model_dir = request.model or settings.generation_model_dir
    product_id, selling_point, seed = request.product, request.selling_point, request.seed
    motion_prior, motion_strength = request.motion_prior, request.strength()
    check_request(request, backbone_family(pipe) if pipe is not None else detect_family(model_dir))  # before any work
    timings: dict[str, float] = {}
    started = time.perf_counter()

    # 1. Knowledge: the selling point, and SAR's best clips for it.
    loaded = sar or load_sar(settings, store=store)
    sp = resolve_selling_point(loaded.graph, product_id, selling_point)
    results = retrieve_for_selling_point(sp["id"], k=request.k, loaded=loaded)
    if not results:
        raise GenerationError(f"no clip could be retrieved for selling point {sp['id']!r}")
    references = [r.clip_id for r in results]
    timings["retrieve_s"] = time.perf_counter() - started

    # 2. Semantic prior: subject from the product, scene and motion from the references; then the
    # configured rewriter adapts the best reference's script (the graph prompt is its fallback).
    plan = build_prompt(loaded.graph, product_id, sp["id"], references)
    t = time.perf_counter()
    graph = loaded.graph
    best_caption = graph.nodes["CreativeClip"][graph.index("CreativeClip")[references[0]]].get("caption") or ""
    product_name = graph.nodes["Product"][graph.index("Product")[product_id]]["name"]
    plan = rewrite_plan(plan, best_caption, product_name, rewriter or rewriter_from_settings(settings))
    timings["rewrite_s"] = time.perf_counter() - t

    # 3. Motion prior: the best reference clip that has a video here.
    clips = loaded.graph.nodes["CreativeClip"]
    videos = [loaded.graph.video_file(clips[loaded.graph.index("CreativeClip")[c]]) for c in references]
    reference_clip, reference_video = next(((c, v) for c, v in zip(references, videos) if v is not None), (None, None))
    if motion_strength > 0 and reference_video is None:
        raise GenerationError("motion_strength > 0 needs a reference clip with a video file, and none of the retrieved clips has one")

    # 4. Generate.
    t = time.perf_counter()
    if pipe is None:
        pipe = load_pipeline(model_dir, settings)
    timings["load_model_s"] = time.perf_counter() - t
    # Image prior: the same clip's middle keyframe, through the IP-Adapter when one is loaded.
    image_conditioning = _image_conditioning(
        settings.ip_adapter, backbone_family(pipe), loaded_ip_adapter(pipe), reference_video, request.ip_adapter_scale
    )
    keyframe = middle_keyframe(reference_video) if image_conditioning["used"] else None
    lora = _motion_lora(request.motion_lora, reference_clip, reference_video, model_dir, settings, store)
    with use_motion_lora(pipe, lora, request.motion_lora_scale) if lora is not None else nullcontext():
        frames, info = generate_frames(
            pipe, plan.prompt, plan.negative_prompt, reference_video=reference_video, motion_strength=motion_strength,
            method=motion_prior, cache=ReferenceCache.under(settings.cache_dir), model_dir=model_dir, seed=seed,
            ip_adapter_image=keyframe, ip_adapter_scale=request.ip_adapter_scale, **request.frame_options(),
        )  # fmt: skip
    timings.update({key: value for key, value in info.items() if key.endswith("_s")})
    parameters = {
        "request": request.recorded(), "fps": FPS, "backbone_family": info["family"],
        "reference_video": str(reference_video.relative_to(settings.media_dir)) if reference_video and reference_video.is_relative_to(settings.media_dir) else None,
        "image_conditioning": image_conditioning,
        "prompt_rewrite": plan.rewrite,
        "motion_lora": None if lora is None else {
            "id": lora.id, "file": lora.node["file_path"], "sha256": lora.node["sha256"], "scale": float(request.motion_lora_scale),
            "trained": {key: lora.node.get(key) for key in LORA_TRAINING_FACTS},
        },
        "motion_prior": {
            "method": motion_prior, "strength": motion_strength,
            "inversion_steps": request.steps if motion_prior == "inversion" and motion_strength > 0 else None,
            "reference_cache": info["reference_cache"],
        },
    }  # fmt: skip

    # 5. Files, then provenance; files are removed again if the graph write fails.
    model_id = Path(model_dir).resolve().name
    fingerprint = hashlib.sha256(json.dumps([product_id, sp["id"], model_id, parameters], sort_keys=True).encode()).hexdigest()[:10]
    video_id = f"gv-{fingerprint}-{uuid.uuid4().hex[:8]}"  # same request twice = two videos, two records
    relative = f"generated/{video_id}.mp4"
    video_path = write_mp4(frames, (Path(scratch_dir) if scratch_dir else settings.media_dir / "generated") / f"{video_id}.mp4", fps=FPS)
    timings["total_s"] = time.perf_counter() - started
    sidecar = video_path.with_suffix(".json")
    sidecar.write_text(
        json.dumps({"video_id": video_id, "product": product_id, "selling_point": sp["id"], "model_id": model_id, "prompt": asdict(plan),
                    "reference_clips": references, "parameters": parameters, "timings": timings}, indent=2, ensure_ascii=False),
        encoding="utf-8",
    )  # fmt: skip
    if scratch_dir is not None:
        return GenerationResult(video_id, video_path, sidecar, plan, references, parameters, timings)
    try:
        with nullcontext(store) if store is not None else open_store(settings) as target:
            record_generation(
                target, video_id=video_id, video_path=relative, model_id=model_id, prompt_plan=plan, seed=seed,
                parameters=parameters, timings=timings, selling_point_id=sp["id"], reference_clip_ids=references,
                motion_lora=None if lora is None else (lora.id, float(request.motion_lora_scale)),
            )  # fmt: skip
    except BaseException:
        video_path.unlink(missing_ok=True)
        sidecar.unlink(missing_ok=True)
        raise
    return GenerationResult(video_id, video_path, sidecar, plan, references, parameters, timings)


def generate_for(product: str, selling_point: str, *, settings: Settings | None = None, store: GraphStore | None = None,
                 **options: Any) -> GenerationResult:  # fmt: skip
    """Scripts' shortcut: the request from keyword options (`GenerationRequest` field names), validated, then generated."""
    request = GenerationRequest.parse({"product": product, "selling_point": selling_point, **options})
    return generate(settings or load_settings(), request, store=store)


def _motion_lora(
    choice: str | None, clip_id: str | None, reference_video: Path | None, model_dir: Path, settings: Settings, store: GraphStore | None
) -> MotionLoraFile | None:
    """The motion LoRA to apply: none, a MotionLora by id, or ("auto") the newest one TRAINED_ON the best reference clip."""
    if choice is None:
        return None
    backbone = backbone_sha256(model_dir, settings.cache_dir)
    with nullcontext(store) if store is not None else open_store(settings, read_only=True) as reader:
        if choice != "auto":
            node = motion_lora_by_id(reader, choice)
            if node is None:
                raise NotFoundError(f"no MotionLora with id {choice!r} (see `kdcvg cypher \"MATCH (m:MotionLora) RETURN m.id\"`)")
            if node["backbone_sha256"] != backbone:
                raise MotionLoraError(f"motion LoRA {choice!r} was trained on another backbone ({node['model_id']}), not on {Path(model_dir).name}")
        elif reference_video is None or clip_id is None:
            raise GenerationError("motion_lora='auto' needs a reference clip with a video file")
        else:
            node = motion_lora_for_clip(reader, clip_id, sha256_file(reference_video), backbone)
            if node is None:
                raise GenerationError(
                    f"no motion LoRA trained on the best reference clip {clip_id!r} for this backbone: "
                    f"run `kdcvg generation train-motion-lora --clip {clip_id}` first"
                )
    return loaded_lora(node, settings.media_dir)


def _image_conditioning(
    configured: Path | None, family: BackboneFamily, adapter: IPAdapterFiles | None, reference_video: Path | None,
    scale: float,
) -> dict[str, Any]:
    """What the provenance records about the IP-Adapter prior: used or not, adapter, scale, keyframe, or why not."""
    record: dict[str, Any] = {"used": False, "adapter": None, "scale": None, "keyframe": None, "reason": None}
    if adapter is None and configured is None:
        record["reason"] = "no IP-Adapter configured"
    elif adapter is None:
        record["reason"] = (
            f"{family.name} backbones do not support IP-Adapter" if not family.ip_adapter
            else "the backbone was loaded without the configured IP-Adapter"
        )
    elif reference_video is None:
        record["reason"] = "no retrieved reference clip has a video file"
    else:
        record.update(used=True, adapter=adapter.weight_name, scale=float(scale), keyframe="middle")
    return record
