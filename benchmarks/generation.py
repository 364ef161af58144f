"""Benchmark MKR generation: plain diffusers pipeline vs MKR (motion prior on), time and peak GPU memory.

Full-size backbones with random weights, built from configs kept here (nothing is downloaded):
AnimateDiff at SD1.5 size (SD1.5 UNet + default MotionAdapter + SD VAE + CLIP ViT-L/14 text
encoder; 16 frames × 512², 25 steps), CogVideoX-2b at native size (30-layer DiT, CogVideoX
3-D VAE, T5-XXL encoder; 49 frames × 480×720, 50 steps) and Wan2.1-T2V-1.3B at native size
(30-layer flow-matching DiT of width 1536, Wan 3-D VAE, UMT5-XXL encoder; 81 frames × 480×832,
50 steps, guidance 5). Weights are random, so the pictures are noise, but every layer runs at its
real size, which is all time and memory depend on.

Per backbone, after one short warm-up: `base` = the plain pipeline call (seeded generator);
`mkr` = `generation.pipeline.generate_frames` with the motion prior on (read the reference mp4,
encode it with the backbone's VAE, FreeInit-style spectral mix, same steps/frames/size);
`mkr_cached` = the same with the reference latents encoded beforehand (what a batch over one
reference clip pays); `inversion` = the inversion prior with an empty reference cache (encode +
inversion along the sampler's ODE (DDIM, or rectified flow for Wan) + generation: what the first
video from a clip pays) and `inversion_cached` = the
same with the inverted noise read from the cache (every later video from that clip). In-memory
backbones have no folder to hash, so the cache is keyed by a stand-in folder holding the
backbone's configs. Overheads are mkr / base − 1 for wall time (target ≤ 5%) and peak
`torch.cuda.max_memory_allocated` (target ≤ 10%). Prints a table and writes JSON to `--out`.

    python benchmarks/generation.py --out bench.json                 # GPU, full size
    python benchmarks/generation.py --tiny --out bench-tiny.json     # CPU smoke test (tiny models)
    python benchmarks/generation.py --only cogvideox --frames 25 --height 320 --width 480 --steps 20
    python benchmarks/generation.py --family wan --tiny               # one family (--family = --only)
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import diffusers
from diffusers import DiffusionPipeline

from generation.backbones import FAMILIES
from generation.inversion import is_flow_matching
from generation.motion_prior import encode_reference
from generation.pipeline import family_call_kwargs, generate_frames, to_uint8
from generation.reference_cache import ReferenceCache
from generation.reference_video import read_reference
from generation.tiny import (
    TINY_ANIMATEDIFF,
    TINY_COGVIDEOX,
    TINY_WAN,
    assemble_animatediff,
    assemble_cogvideox,
    assemble_wan,
)
from kb.demo.clips import render_clip

TARGET_TIME, TARGET_MEMORY = 0.05, 0.10
PROMPT, NEGATIVE = "slow pan over a red bottle on a marble table, studio light", "blurry, low quality"

# --- Full-size configs (public model configs, written out so nothing is fetched) -----------------
SD15_ANIMATEDIFF: dict[str, dict[str, Any]] = {
    "unet": {  # runwayml/stable-diffusion-v1-5 unet/config.json
        "sample_size": 64, "in_channels": 4, "out_channels": 4, "layers_per_block": 2,
        "block_out_channels": (320, 640, 1280, 1280), "cross_attention_dim": 768, "attention_head_dim": 8,
        "down_block_types": ("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        "up_block_types": ("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        "norm_num_groups": 32,
    },
    "motion_adapter": {},  # MotionAdapter() defaults = AnimateDiff v1.5 motion modules (SD1.5 widths, 32 frames)
    "vae": {  # stable-diffusion-v1-5 vae/config.json
        "in_channels": 3, "out_channels": 3, "latent_channels": 4, "layers_per_block": 2, "sample_size": 512,
        "block_out_channels": (128, 256, 512, 512), "down_block_types": ("DownEncoderBlock2D",) * 4,
        "up_block_types": ("UpDecoderBlock2D",) * 4, "scaling_factor": 0.18215,
    },
    "text_encoder": {  # openai/clip-vit-large-patch14 text tower (SD1.5's text encoder)
        "vocab_size": 49408, "hidden_size": 768, "intermediate_size": 3072, "num_attention_heads": 12,
        "num_hidden_layers": 12, "max_position_embeddings": 77, "hidden_act": "quick_gelu", "projection_dim": 768,
    },
    "scheduler": TINY_ANIMATEDIFF["scheduler"],  # the tiny model already uses SD's DDIM schedule
}  # fmt: skip
COGVIDEOX_2B: dict[str, dict[str, Any]] = {
    "transformer": {  # THUDM/CogVideoX-2b transformer/config.json
        "num_attention_heads": 30, "attention_head_dim": 64, "in_channels": 16, "out_channels": 16,
        "time_embed_dim": 512, "text_embed_dim": 4096, "num_layers": 30, "sample_width": 90, "sample_height": 60,
        "sample_frames": 49, "patch_size": 2, "temporal_compression_ratio": 4, "max_text_seq_length": 226,
        "use_rotary_positional_embeddings": False, "spatial_interpolation_scale": 1.875,
    },
    "vae": {  # THUDM/CogVideoX-2b vae/config.json
        "block_out_channels": (128, 256, 256, 512), "latent_channels": 16, "layers_per_block": 3,
        "temporal_compression_ratio": 4, "scaling_factor": 1.15258426,
    },
    "text_encoder": {  # google/t5-v1_1-xxl encoder (CogVideoX's text encoder)
        "vocab_size": 32128, "d_model": 4096, "d_kv": 64, "d_ff": 10240, "num_layers": 24, "num_heads": 64,
        "relative_attention_num_buckets": 32, "feed_forward_proj": "gated-gelu",
    },
    "scheduler": TINY_COGVIDEOX["scheduler"],  # the tiny model already uses CogVideoX's schedule
}  # fmt: skip

WAN_1_3B: dict[str, dict[str, Any]] = {
    "transformer": {  # Wan-AI/Wan2.1-T2V-1.3B-Diffusers transformer/config.json (dim 1536 = 12 heads × 128)
        "patch_size": (1, 2, 2), "num_attention_heads": 12, "attention_head_dim": 128, "in_channels": 16,
        "out_channels": 16, "text_dim": 4096, "freq_dim": 256, "ffn_dim": 8960, "num_layers": 30,
        "cross_attn_norm": True, "qk_norm": "rms_norm_across_heads", "eps": 1e-6, "rope_max_seq_len": 1024,
    },
    "vae": {},  # AutoencoderKLWan() defaults = the Wan 2.1 VAE (base 96, z 16, 8x space, 4x time, its latents_mean/std)
    "text_encoder": {  # google/umt5-xxl encoder (Wan's text encoder)
        "vocab_size": 256384, "d_model": 4096, "d_kv": 64, "d_ff": 10240, "num_layers": 24, "num_heads": 64,
        "relative_attention_num_buckets": 32, "feed_forward_proj": "gated-gelu",
    },
    # Shift 3 as Wan ships for 480p; its folder's UniPC solver makes the same one DiT call per step.
    "scheduler": TINY_WAN["scheduler"],
}  # fmt: skip

# Per backbone: default frames, height, width, steps, guidance (full size; --tiny overrides).
DEFAULTS = {"animatediff": (16, 512, 512, 25, 7.5), "cogvideox": (49, 480, 720, 50, 6.0), "wan": (81, 480, 832, 50, 5.0)}
TINY_DEFAULTS = {"animatediff": (8, 64, 64, 2, 7.5), "cogvideox": (9, 64, 64, 2, 6.0), "wan": (9, 64, 64, 2, 5.0)}


# name -> (assembler, full-size configs, tiny configs, pipeline class)
BUILDERS: dict[str, tuple[Callable[..., DiffusionPipeline], dict, dict, str]] = {
    "animatediff": (assemble_animatediff, SD15_ANIMATEDIFF, TINY_ANIMATEDIFF, "AnimateDiffPipeline"),
    "cogvideox": (assemble_cogvideox, COGVIDEOX_2B, TINY_COGVIDEOX, "CogVideoXPipeline"),
    "wan": (assemble_wan, WAN_1_3B, TINY_WAN, "WanPipeline"),
}


def make_pipeline(name: str, tiny: bool, device: torch.device, scratch: Path, vae_tiling: bool) -> DiffusionPipeline:
    """Build a backbone directly on `device` (random weights), cast to the family's CUDA dtype on GPU."""
    assemble, full, small, class_name = BUILDERS[name]
    family = FAMILIES[class_name]
    with torch.device(device):  # random init directly on the GPU (the T5-XXL alone is 4.7B parameters, UMT5-XXL 5.7B)
        pipe = assemble(scratch / name, small if tiny else full)
    dtype = family.cuda_dtype if device.type == "cuda" else torch.float32
    pipe.to(device=device, dtype=dtype)
    pipe.set_progress_bar_config(disable=True)
    pipe.kdcvg_family = family
    if vae_tiling and hasattr(pipe.vae, "enable_tiling"):
        pipe.vae.enable_tiling()
    return pipe


def _sync(device: torch.device) -> None:
    """Wait for queued GPU work, so wall times cover it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(device: torch.device, run: Callable[[], Any]) -> dict[str, float | None]:
    """Wall time and peak allocated GPU memory (MiB; None on CPU) of one call."""
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    _sync(device)
    started = time.perf_counter()
    run()
    _sync(device)
    elapsed = time.perf_counter() - started
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
    return {"time_s": elapsed, "peak_mib": peak}


def bench_backbone(name: str, args: argparse.Namespace, device: torch.device, scratch: Path) -> dict[str, Any]:
    """Base vs MKR (fresh and cached reference encoding) for one backbone; medians over `--repeats`."""
    frames, height, width, steps, guidance = (TINY_DEFAULTS if args.tiny else DEFAULTS)[name]
    frames, height, width, steps = args.frames or frames, args.height or height, args.width or width, args.steps or steps
    compression = FAMILIES[BUILDERS[name][3]].temporal_compression
    if (frames - 1) % compression:
        frames = (frames - 1) // compression * compression + 1  # a 3-D VAE takes k·t + 1 frames
    if name == "animatediff" and args.frames:
        frames = min(frames, 32)  # the motion modules' positional table holds 32 frames
    started = time.perf_counter()
    pipe = make_pipeline(name, args.tiny, device, scratch, vae_tiling=args.vae_tiling and name == "cogvideox")
    build_s = time.perf_counter() - started
    denoiser = getattr(pipe, "transformer", None) or pipe.unet
    modules = [c for n, c in pipe.components.items() if isinstance(c, torch.nn.Module) and n != "motion_adapter"]
    params = sum(p.numel() for module in modules for p in module.parameters())  # motion modules counted in the UNet
    reference = render_clip(scratch / f"reference-{name}.mp4", motion="pan_right", seed=1, num_frames=max(frames, 16))
    common = {"num_frames": frames, "height": height, "width": width, "guidance_scale": guidance, "seed": 0}

    def base() -> None:
        result = pipe(
            PROMPT, negative_prompt=NEGATIVE, num_frames=frames, height=height, width=width, num_inference_steps=steps,
            guidance_scale=guidance, generator=torch.Generator().manual_seed(0), output_type="np", **family_call_kwargs(pipe),
        )  # fmt: skip
        to_uint8(result.frames[0])

    def mkr() -> None:
        generate_frames(pipe, PROMPT, NEGATIVE, reference_video=reference, motion_strength=args.strength, steps=steps, **common)

    latents = encode_reference(pipe, read_reference(reference, frames, height, width))

    def mkr_cached() -> None:
        generate_frames(pipe, PROMPT, NEGATIVE, reference_latents=latents, motion_strength=args.strength, steps=steps, **common)

    stand_in = scratch / f"backbone-{name}"  # the cache key's "backbone folder" for an in-memory pipeline
    stand_in.mkdir(exist_ok=True)
    (stand_in / "configs.json").write_text(json.dumps({k: str(c.config) for k, c in pipe.components.items() if hasattr(c, "config")}))
    inversion_options = {"reference_video": reference, "motion_strength": args.inversion_strength, "method": "inversion",
                         "model_dir": stand_in, "steps": steps, **common}  # fmt: skip
    cold_runs = iter(range(10**6))

    def inversion() -> None:
        generate_frames(pipe, PROMPT, NEGATIVE, cache=ReferenceCache(scratch / f"cold-{name}-{next(cold_runs)}"), **inversion_options)

    warm_cache = ReferenceCache(scratch / f"warm-{name}")
    generate_frames(pipe, PROMPT, NEGATIVE, cache=warm_cache, **inversion_options)  # fills the cache

    def inversion_cached() -> None:
        generate_frames(pipe, PROMPT, NEGATIVE, cache=warm_cache, **inversion_options)

    generate_frames(pipe, PROMPT, NEGATIVE, reference_video=reference, motion_strength=args.strength, steps=1, **common)  # warm-up
    variants = (("base", base), ("mkr", mkr), ("mkr_cached", mkr_cached), ("inversion", inversion), ("inversion_cached", inversion_cached))
    runs: dict[str, list[dict[str, float | None]]] = {label: [] for label, _ in variants}
    for _ in range(args.repeats):
        for label, fn in variants:
            runs[label].append(measure(device, fn))
    summary = {label: _median(values) for label, values in runs.items()}
    result: dict[str, Any] = {
        "backbone": name, "size": "tiny" if args.tiny else "full", "parameters_m": round(params / 1e6, 1),
        "frames": frames, "height": height, "width": width, "steps": steps, "guidance_scale": guidance,
        "motion_strength": args.strength, "method": "spectral", "dtype": str(denoiser.dtype).removeprefix("torch."),
        "vae_tiling": bool(getattr(pipe.vae, "use_tiling", False)), "repeats": args.repeats, "build_s": build_s,
        **summary,
    }  # fmt: skip
    result["inversion_strength"] = args.inversion_strength
    result["inversion_ode"] = "rectified flow" if is_flow_matching(pipe.scheduler) else "DDIM"
    for label in ("mkr", "mkr_cached", "inversion", "inversion_cached"):
        result[f"{label}_time_overhead"] = summary[label]["time_s"] / summary["base"]["time_s"] - 1.0
        base_peak, peak = summary["base"]["peak_mib"], summary[label]["peak_mib"]
        result[f"{label}_memory_overhead"] = peak / base_peak - 1.0 if base_peak and peak else None
    # The targets are for full-size models on a GPU; a tiny CPU run only checks that everything runs.
    result["targets_met"] = None if args.tiny or device.type != "cuda" else (
        result["mkr_time_overhead"] <= TARGET_TIME and result["mkr_memory_overhead"] <= TARGET_MEMORY
    )
    return result


def _median(values: list[dict[str, float | None]]) -> dict[str, float | None]:
    """Per-key median of measurement dicts (None stays None)."""
    return {key: None if values[0][key] is None else statistics.median(v[key] for v in values) for key in values[0]}


def _pct(value: float | None) -> str:
    return "n/a (CPU)" if value is None else f"{100 * value:+.1f}%"


def _mib(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.0f}"


def table(results: list[dict[str, Any]]) -> str:
    """A Markdown table of the results."""
    lines = [
        "| backbone | frames × H × W, steps | base s | spectral s | spectral cached s | time overhead (cached) | inversion s | inversion cached s | time overhead (cached) | base peak MiB | MKR peak MiB | memory overhead | targets (≤5% time, ≤10% mem) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['backbone']} ({r['size']}, {r['parameters_m']}M params, {r['dtype']}) | {r['frames']} × {r['height']} × {r['width']}, {r['steps']} "
            f"| {r['base']['time_s']:.2f} | {r['mkr']['time_s']:.2f} | {r['mkr_cached']['time_s']:.2f} "
            f"| {_pct(r['mkr_time_overhead'])} ({_pct(r['mkr_cached_time_overhead'])}) "
            f"| {r['inversion']['time_s']:.2f} | {r['inversion_cached']['time_s']:.2f} "
            f"| {_pct(r['inversion_time_overhead'])} ({_pct(r['inversion_cached_time_overhead'])}) "
            f"| {_mib(r['base']['peak_mib'])} | {_mib(r['mkr']['peak_mib'])} | {_pct(r['mkr_memory_overhead'])} "
            f"| {'n/a (smoke test)' if r['targets_met'] is None else 'met' if r['targets_met'] else 'NOT met'} |"
        )  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Parse flags, run the benchmarks, print the table, write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true", help="tiny random models on CPU (smoke test)")
    parser.add_argument("--only", "--family", choices=sorted(BUILDERS), action="append", help="backbone(s) to run (default: all)")
    parser.add_argument("--frames", type=int, help="override the frame count")
    parser.add_argument("--height", type=int, help="override the height")
    parser.add_argument("--width", type=int, help="override the width")
    parser.add_argument("--steps", type=int, help="override the number of denoising steps")
    parser.add_argument("--strength", type=float, default=0.5, help="motion strength for the spectral MKR runs")
    parser.add_argument("--inversion-strength", type=float, default=0.7, help="reference intensity β for the inversion runs")
    parser.add_argument("--repeats", type=int, default=1, help="runs per variant (median reported)")
    parser.add_argument("--no-vae-tiling", dest="vae_tiling", action="store_false", help="CogVideoX: decode/encode untiled")
    parser.add_argument("--device", default=None, help="cuda or cpu (default: cuda when available, cpu with --tiny)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    args = parser.parse_args(argv)
    diffusers.utils.logging.set_verbosity_error()  # no per-call prompt-truncation warnings (tokenizers are toy ones)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() and not args.tiny else "cpu"))
    if device.type == "cpu" and not args.tiny:
        print("warning: full-size backbones on CPU take hours; use --tiny for a smoke test", file=sys.stderr)
    results = []
    with tempfile.TemporaryDirectory(prefix="kdcvg-bench-") as scratch:
        for name in args.only or sorted(BUILDERS):
            results.append(bench_backbone(name, args, device, Path(scratch)))
            gc.collect()  # the backbone is gone with bench_backbone's frame: free its memory before the next one
            if device.type == "cuda":
                torch.cuda.empty_cache()
            print(f"{name}: done ({results[-1]['base']['time_s']:.1f} s base)", file=sys.stderr, flush=True)
    report = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)",
        "torch": torch.__version__, "diffusers": diffusers.__version__, "python": platform.python_version(),
        "targets": {"time_overhead": TARGET_TIME, "memory_overhead": TARGET_MEMORY}, "results": results,
    }  # fmt: skip
    print(f"{report['device']}, torch {report['torch']}, diffusers {report['diffusers']}")
    print(table(results))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
