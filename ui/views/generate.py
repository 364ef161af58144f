"""Generate: pick a product and selling point, run MKR (`generation.api.generate`), watch the video and its provenance.

Provenance is read back from the graph (`GeneratedVideo` -REFERENCED-> clips, -GENERATED_FOR->
selling point, -USED_LORA-> motion LoRA), so the page shows what was recorded, for this run and for
earlier ones. The motion LoRA control offers none, "auto" (the best reference clip's newest LoRA) or
a stored MotionLora of a clip illustrating the chosen selling point, trained on the chosen backbone,
with its scale: the same `motion_lora` / `motion_lora_scale` request fields as the CLI and the API.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import streamlit as st

from generation import DEMO_MODEL_DIR
from generation.api import generate
from generation.motion_lora import backbone_sha256
from generation.provenance import motion_loras_for_selling_point
from generation.request import MAX_FRAMES, GenerationOptions, GenerationRequest, RequestError
from kb import repository as repo
from kb.store import GraphStore, Row
from kdcvg.config import Settings
from ui import state
from ui.render import md_escape
from ui.widgets import point_chooser, show_video

generated_videos = repo.NodeRepository("GeneratedVideo")
HISTORY = 5


def model_choices(settings: Settings) -> dict[str, Path]:
    """The backbones annotators may pick (an allow-list from the settings), by a name that shows no server path."""
    choices = {"Configured backbone": settings.generation_model_dir, "Shipped demo backbone": DEMO_MODEL_DIR}
    if choices["Configured backbone"].resolve() == DEMO_MODEL_DIR.resolve():
        del choices["Shipped demo backbone"]
    return choices


def lora_choices(store: GraphStore, settings: Settings, point_id: str, model_dir: Path) -> dict[str | None, str]:
    """The motion LoRA options by request value (None, "auto", MotionLora ids), with the label each shows."""
    choices: dict[str | None, str] = {None: "none", "auto": "auto: the best reference clip's newest LoRA"}
    if model_dir.is_dir():
        for lora in motion_loras_for_selling_point(store, point_id, backbone_sha256(model_dir, settings.cache_dir)):
            choices[lora["id"]] = f"{lora['id']} · clip {lora['clip']} · {lora['steps']} steps"
    return choices


def provenance(store: GraphStore, video_id: str) -> tuple[Row, list[Row]]:
    """A GeneratedVideo and its reference clips (rank order), each with the clip's motion."""
    around = generated_videos.neighbourhood(store, video_id)
    references = sorted(
        (link for link in around["relationships"] if link["type"] == "REFERENCED"), key=lambda link: link["properties"].get("rank") or 0
    )
    rows = []
    for link in references:
        clip = link["node"]
        motion = next((m["node"] for m in repo.clips.neighbourhood(store, clip["id"])["relationships"] if m["type"] == "HAS_MOTION"), None)
        rows.append({"rank": link["properties"].get("rank"), "clip": clip, "motion": motion})
    return around["node"], rows


def show_provenance(store: GraphStore, media_dir: Path, video_id: str) -> None:
    """The video, then which model, prompt, seed and parameters made it, and from which clips and motion."""
    video, references = provenance(store, video_id)
    left, right = st.columns([1, 1])
    with left:
        show_video(media_dir, video.get("video_path"))
    with right:
        st.markdown(f"**{md_escape(video['id'])}**")
        st.caption(md_escape(f"model: {video['model_id']} · seed: {video['seed']} · made: {video['created_at']}"))
        st.text("prompt: " + (video.get("prompt") or ""))
        if video.get("negative_prompt"):
            st.text("negative prompt: " + video["negative_prompt"])
        if references:
            best = references[0]["motion"]
            st.caption(md_escape(f"motion prior from the best reference: {best['name'] if best else 'none'}"))
        parameters = json.loads(video.get("parameters") or "{}")
        lora = parameters.get("motion_lora")
        st.caption(md_escape(f"motion LoRA: {lora['id']} at scale {lora['scale']:g}" if lora else "motion LoRA: none"))
        with st.expander("parameters and timings"):
            st.json({"parameters": parameters, "timings": json.loads(video.get("timings") or "{}")})
    if references:
        st.markdown("**Reference clips** (rank 1 = best)")
        columns = st.columns(len(references))
        for column, reference in zip(columns, references):
            with column:
                show_video(media_dir, reference["clip"].get("video_path"))
                motion = reference["motion"]["name"] if reference["motion"] else "—"
                st.caption(md_escape(f"#{reference['rank']} {reference['clip']['id']} · motion: {motion}"))
                st.text(reference["clip"].get("caption") or "")


def page() -> None:
    """Choose what to generate, run it, and show results."""
    state.require("generate")
    shared = state.shared_store()
    media_dir = shared.settings.media_dir
    st.header("Generate a video")
    with shared.use() as store:
        product, point = point_chooser(store, "gen")
    if product is None or point is None:
        return
    defaults = GenerationOptions()
    with st.expander("Model and settings"):
        models = model_choices(shared.settings)
        model = st.selectbox("Backbone", list(models), key="gen_model", help="The backbones this server is configured with.")
        first, second, third = st.columns(3)
        k = first.number_input("Reference clips (k)", 1, 10, defaults.k, key="gen_k")
        seed = second.number_input("Seed", 0, 2**31 - 1, defaults.seed, key="gen_seed")
        strength = third.slider("Motion strength", 0.0, 1.0, defaults.strength(), key="gen_strength")
        frames = first.number_input("Frames", 2, MAX_FRAMES, defaults.frames, key="gen_frames")
        steps = second.number_input("Steps", 1, 100, defaults.steps, key="gen_steps")
        size = third.select_slider("Size (pixels)", [64, 128, 256, 512], defaults.height, key="gen_size")
        with shared.use() as store:
            loras = lora_choices(store, shared.settings, point["id"], models[model])
        lora = first.selectbox("Motion LoRA", list(loras), format_func=loras.__getitem__, key="gen_lora",
                               help="Train one with `kdcvg generation train-motion-lora --clip ID`.")  # fmt: skip
        lora_scale = second.slider("Motion LoRA scale", 0.0, 2.0, defaults.motion_lora_scale, 0.05, key="gen_lora_scale")
    if st.button("Generate", type="primary", key="gen_run"):
        values = {"product": product["id"], "selling_point": point["id"], "model": models[model], "k": int(k), "seed": int(seed),
                  "motion_strength": float(strength), "frames": int(frames), "height": int(size), "width": int(size), "steps": int(steps),
                  "motion_lora": lora, "motion_lora_scale": float(lora_scale)}  # fmt: skip
        try:
            request = GenerationRequest.parse(values)
            with st.spinner("Retrieving references and generating…"):  # the store is locked per read and write only
                result = generate(shared.settings, request, store=shared.per_call())
        except RequestError as error:  # the settings above do not fit this backbone: say which, the user can fix it
            st.error(md_escape(f"Cannot generate with these settings: {error}"))
        except Exception:  # noqa: BLE001 - generation can fail in many libraries; keep the page, never show server paths
            reference = secrets.token_hex(4)
            state.LOG.exception("generation failed (reference %s)", reference)
            st.error(f"Generation failed (reference {reference}): the details are in the server's log.")
        else:
            st.session_state["gen_last"] = result.video_id
            st.success(md_escape(f"generated {result.video_id} in {result.timings.get('total_s', 0):.1f} s"))
    with shared.use() as store:
        earlier = generated_videos.list(store, related_to=("GENERATED_FOR", point["id"]), limit=repo.MAX_PAGE).items
        latest = sorted(earlier, key=lambda v: v["created_at"], reverse=True)[:HISTORY]
        if not latest:
            st.info("No video has been generated for this selling point yet.")
        for video in latest:
            st.divider()
            show_provenance(store, media_dir, video["id"])


page()
