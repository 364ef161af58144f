"""generate(): one call from a product and a selling point to an mp4 with its provenance in the graph.

Reads top to bottom: SAR retrieves reference clips for the selling point → the semantic prior
builds the prompt from them (generation/prompt.py) → the backbone generates with the best
reference's motion injected into the initial noise (generation/pipeline.py) → the mp4 and a JSON
sidecar are written under `<data>/media/generated/` → a `GeneratedVideo` node links the clips it
REFERENCED and the selling point it was GENERATED_FOR. If recording fails, the files are removed.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from kb.store import open_store
from kdcvg.config import Settings, load_settings
from retrieval.api import load_sar, retrieve_for_selling_point

from generation.backbones import load_backbone
from generation.pipeline import GenerationError, generate_frames, write_mp4
from generation.prompt import PromptPlan, build_prompt, resolve_selling_point
from generation.provenance import record_generation

FPS = 8.0


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


def generate(
    product_id: str,
    selling_point: str,
    *,
    model_dir: Path,
    k: int = 3,
    seed: int = 0,
    motion_strength: float = 0.5,
    num_frames: int = 8,
    height: int = 64,
    width: int = 64,
    steps: int = 4,
    guidance_scale: float = 7.5,
    settings: Settings | None = None,
) -> GenerationResult:
    """Generate a video for `product_id`'s `selling_point` (id or exact text); deterministic for a seed."""
    settings = settings or load_settings()
    timings: dict[str, float] = {}
    started = time.perf_counter()

    # 1. Knowledge: the selling point, and SAR's best clips for it.
    loaded = load_sar(settings)
    sp = resolve_selling_point(loaded.graph, product_id, selling_point)
    results = retrieve_for_selling_point(sp["id"], k=k, loaded=loaded)
    if not results:
        raise GenerationError(f"no clip could be retrieved for selling point {sp['id']!r}")
    references = [r.clip_id for r in results]
    timings["retrieve_s"] = time.perf_counter() - started

    # 2. Semantic prior: subject from the product, scene and motion from the references.
    plan = build_prompt(loaded.graph, product_id, sp["id"], references)

    # 3. Motion prior: the best reference clip that has a video here.
    clips = loaded.graph.nodes["CreativeClip"]
    videos = [loaded.graph.video_file(clips[loaded.graph.index("CreativeClip")[c]]) for c in references]
    reference_video = next((v for v in videos if v is not None), None)
    if motion_strength > 0 and reference_video is None:
        raise GenerationError("motion_strength > 0 needs a reference clip with a video file, and none of the retrieved clips has one")

    # 4. Generate.
    t = time.perf_counter()
    pipe = load_backbone(model_dir)
    timings["load_model_s"] = time.perf_counter() - t
    frames, info = generate_frames(
        pipe, plan.prompt, plan.negative_prompt, reference_video=reference_video, motion_strength=motion_strength,
        num_frames=num_frames, height=height, width=width, steps=steps, guidance_scale=guidance_scale, seed=seed,
    )  # fmt: skip
    timings.update({key: value for key, value in info.items() if key.endswith("_s")})
    parameters = {
        "k": k, "seed": seed, "motion_strength": motion_strength, "num_frames": num_frames, "height": height,
        "width": width, "steps": steps, "guidance_scale": guidance_scale, "fps": FPS,
        "reference_video": str(reference_video.relative_to(settings.media_dir)) if reference_video and reference_video.is_relative_to(settings.media_dir) else None,
    }  # fmt: skip

    # 5. Files, then provenance; files are removed again if the graph write fails.
    model_id = Path(model_dir).resolve().name
    fingerprint = hashlib.sha256(json.dumps([product_id, sp["id"], model_id, parameters], sort_keys=True).encode()).hexdigest()[:10]
    video_id = f"gv-{fingerprint}-{uuid.uuid4().hex[:8]}"  # same request twice = two videos, two records
    relative = f"generated/{video_id}.mp4"
    video_path = write_mp4(frames, settings.media_dir / relative, fps=FPS)
    timings["total_s"] = time.perf_counter() - started
    sidecar = video_path.with_suffix(".json")
    sidecar.write_text(
        json.dumps({"video_id": video_id, "product": product_id, "selling_point": sp["id"], "model_id": model_id, "prompt": asdict(plan),
                    "reference_clips": references, "parameters": parameters, "timings": timings}, indent=2, ensure_ascii=False),
        encoding="utf-8",
    )  # fmt: skip
    try:
        with open_store(settings) as store:
            record_generation(
                store, video_id=video_id, video_path=relative, model_id=model_id, prompt_plan=plan, seed=seed,
                parameters=parameters, timings=timings, selling_point_id=sp["id"], reference_clip_ids=references,
            )  # fmt: skip
    except BaseException:
        video_path.unlink(missing_ok=True)
        sidecar.unlink(missing_ok=True)
        raise
    return GenerationResult(video_id, video_path, sidecar, plan, references, parameters, timings)
