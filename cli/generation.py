"""`kdcvg generate` (one video, or a batch file) and `kdcvg generation ...`: MKR from the command line.

`generate` and `generation_app` are registered on the main app by cli.main. The backbone is
`--model`, else `Settings.generation_model_dir` (`KDCVG_GENERATION_MODEL`, default
`<data>/models/mkr-demo`); a missing folder is one clear error saying how to get one.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from enum import Enum
from pathlib import Path
from typing import IO, Annotated, Any, Optional

import typer
from rich.table import Table

from cli.common import err, fail, handled_errors, out, settings, writer_lock
from cli.demo_backbone import train_demo

generation_app = typer.Typer(help="MKR: knowledge-referenced video generation (evaluation, demo backbone).", no_args_is_help=True)
generation_app.command("train-demo")(train_demo)

class MotionPrior(str, Enum):
    """The motion priors offered on the command line (generation.request.METHODS)."""

    spectral = "spectral"
    inversion = "inversion"
    noise_prior = "noise_prior"


ModelOption = Annotated[
    Optional[Path],
    typer.Option(help="Local diffusers pipeline directory (default: settings' generation_model, <data>/models/mkr-demo)."),
]


def _model_dir(model: Path | None) -> Path:
    """The backbone folder to use, checked to exist (else exit 2 with how to get one)."""
    from generation.generator import require_model_dir

    with handled_errors():
        return require_model_dir(model or settings().generation_model_dir)
    raise AssertionError("unreachable")


# Request fields whose flag is not `--field-name` (generation.request.GenerationOptions).
FLAGS = {"k": "-k", "height": "--size", "width": "--size"}


def request_from_flags(values: dict[str, Any], defaults: Any = None, *, what: bool = False) -> Any:
    """The flags' values as a GenerationOptions (a GenerationRequest with `what`); a bad one exits 2 naming its flag."""
    from generation.request import GenerationOptions, GenerationRequest, RequestError

    model = GenerationRequest if what else GenerationOptions
    try:
        return model.parse(values, defaults)
    except RequestError as error:
        fail(str(error.renamed({name: FLAGS.get(name, "--" + name.replace("_", "-")) for name, _ in error.problems})), 2)
    raise AssertionError("unreachable")


def generate(
    product: Annotated[Optional[str], typer.Option(help="Product id.")] = None,
    selling_point: Annotated[Optional[str], typer.Option("--selling-point", help="Selling point id, or its exact text.")] = None,
    batch: Annotated[
        Optional[Path], typer.Option(help="JSON-lines request file (see generation.batch); options below are its defaults.")
    ] = None,
    model: ModelOption = None,
    k: Annotated[int, typer.Option("-k", help="Reference clips retrieved (1-100).")] = 3,
    seed: Annotated[int, typer.Option(help="Seed of the initial noise (>= 0).")] = 0,
    motion_strength: Annotated[
        Optional[float],
        typer.Option(help="0 = plain text-to-video; 1 = strongest motion prior (default: 0.5 spectral, 0.7 inversion)."),
    ] = None,
    motion_prior: Annotated[
        MotionPrior, typer.Option(help="spectral: reference low frequencies in the noise; inversion: the reference inverted along the sampler's ODE.")
    ] = MotionPrior.spectral,
    frames: Annotated[int, typer.Option(help="Frames (1-81; the backbone may allow fewer or need 4·k + 1).")] = 8,
    size: Annotated[int, typer.Option(help="Width and height in pixels (multiple of 8).")] = 64,
    steps: Annotated[int, typer.Option(help="Denoising steps.")] = 4,
    guidance_scale: Annotated[float, typer.Option(help="Classifier-free guidance weight (0-50).")] = 7.5,
    ip_adapter_scale: Annotated[
        float, typer.Option(help="Weight of the reference keyframe when KDCVG_IP_ADAPTER is set (0 = text only, up to 1).")
    ] = 0.5,
    motion_lora: Annotated[
        Optional[str], typer.Option(help="A MotionLora id, or 'auto': the newest one trained on the best reference clip (train-motion-lora).")
    ] = None,
    motion_lora_scale: Annotated[float, typer.Option(help="Weight of the motion LoRA (0 = none, up to 2).")] = 1.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    out_file: Annotated[
        Optional[Path], typer.Option("--out", help="With --batch: write the JSON-lines results here, not to stdout.")
    ] = None,
) -> None:
    """Retrieve reference clips, build the prompt, generate with their motion, record provenance."""
    if batch is not None and (product is not None or selling_point is not None):
        fail("give --batch or --product/--selling-point, not both", 2)
    if batch is None and (product is None or selling_point is None):
        fail("give --product and --selling-point (or --batch FILE)", 2)
    if batch is None and out_file is not None:
        fail("--out goes with --batch (use --json for one video)", 2)
    options = request_from_flags({
        "model": _model_dir(model), "k": k, "seed": seed, "motion_strength": motion_strength, "motion_prior": motion_prior.value,
        "frames": frames, "height": size, "width": size, "steps": steps, "guidance_scale": guidance_scale,
        "ip_adapter_scale": ip_adapter_scale, "motion_lora": motion_lora, "motion_lora_scale": motion_lora_scale,
    })  # fmt: skip
    if batch is not None:
        with writer_lock(settings()):  # records provenance: refused while the curation app runs on the store
            _generate_batch(batch, options, out_file)
        return
    from generation.api import generate as run

    request = request_from_flags({"product": product, "selling_point": selling_point}, options, what=True)
    with writer_lock(settings()), handled_errors():
        result = run(settings(), request)
    if as_json:
        payload = {**asdict(result), "video_path": str(result.video_path), "sidecar_path": str(result.sidecar_path)}
        print(json.dumps(payload, indent=2, ensure_ascii=False, default=str))
        return
    out.print(f"video: {result.video_path}", highlight=False)
    out.print(f"prompt: {result.prompt.prompt}", highlight=False)
    out.print(f"references: {', '.join(result.reference_clips)}; provenance: GeneratedVideo {result.video_id}", highlight=False)


def _generate_batch(path: Path, defaults: Any, out_file: Path | None) -> None:
    """Validate the whole file, load once, generate each request; JSON lines out, failures named, exit 1 if any."""
    from generation.backbones import backbone_family
    from generation.batch import BatchError, check_requests, read_requests, run_batch
    from generation.generator import Generator
    from kb.backends import open_store

    try:
        requests = read_requests(path, defaults)
    except BatchError as error:
        fail(f"{len(error.problems)} problem(s), nothing generated:\n" + "\n".join(error.problems), 2)
    with handled_errors():
        generator = Generator(defaults.model, settings())
    with handled_errors(), open_store(settings(), read_only=True) as store:
        lora_ids = {row[0] for row in store.query("MATCH (m:MotionLora) RETURN m.id").rows}
    try:
        check_requests(path, requests, generator.sar.graph, backbone_family(generator.pipe), generator.model_dir, lora_ids)
    except BatchError as error:
        fail(f"{len(error.problems)} problem(s), nothing generated:\n" + "\n".join(error.problems), 2)
    stream: IO[str] = out_file.open("w", encoding="utf-8") if out_file is not None else sys.stdout

    def emit(record: dict[str, Any]) -> None:
        stream.write(json.dumps(record, ensure_ascii=False) + "\n")
        stream.flush()

    try:
        results = run_batch(generator, requests, emit, progress=sys.stderr.isatty())
    finally:
        if out_file is not None:
            stream.close()
    failed = [r for r in results if not r["ok"]]
    err.print(
        f"{len(results) - len(failed)} of {len(results)} video(s) generated" + (f"; results in {out_file}" if out_file else ""),
        highlight=False,
    )
    if failed:
        names = "\n".join(
            f"{path}:{r['line']} ({r['request']['product']}, {r['request']['selling_point']!r}): {r['error']}" for r in failed
        )
        fail(f"{len(failed)} request(s) failed:\n{names}", 1)


@generation_app.command("eval")
def evaluate(
    selling_points: Annotated[
        Optional[str],
        typer.Option("--selling-points", help="Selling point ids: a file (one per line) or a comma-separated list."),
    ] = None,
    count: Annotated[int, typer.Option("-n", min=1, help="Without --selling-points: this many, SAR's held-out ones first.")] = 5,
    sample_seed: Annotated[int, typer.Option(help="Seed of the draw of default selling points.")] = 0,
    seeds: Annotated[str, typer.Option(help="Generation seeds, comma-separated; every variant uses the same.")] = "0,1",
    variants: Annotated[
        str, typer.Option(help="Compared variants besides plain (always in), comma-separated: spectral, inversion, lora, inversion+lora, full.")
    ] = "spectral,inversion",
    model: ModelOption = None,
    k: Annotated[int, typer.Option("-k", help="Reference clips retrieved (1-100).")] = 3,
    motion_strength: Annotated[
        Optional[float], typer.Option(help="Motion prior strength (> 0, up to 1; default: each prior's own).")
    ] = None,
    frames: Annotated[int, typer.Option(help="Frames (1-81; the backbone may allow fewer or need 4·k + 1).")] = 8,
    size: Annotated[int, typer.Option(help="Width and height in pixels (multiple of 8).")] = 64,
    steps: Annotated[int, typer.Option(help="Denoising steps.")] = 4,
    videos_dir: Annotated[
        Optional[Path], typer.Option(help="Where the evaluation videos go (default: <data>/cache/generation-eval/<time>).")
    ] = None,
    out_file: Annotated[
        Optional[Path], typer.Option("--out", help="Write the full report (every pair, every metric) as JSON here.")
    ] = None,
) -> None:
    """MKR's motion priors vs the same backbone without knowledge: mean ± std, paired differences, Min-Max score."""
    from generation.evaluate import default_videos_dir, evaluate_generation, parse_selling_points, pick_selling_points, table_rows
    from generation.generator import Generator
    from retrieval.clip_image import clip_encoder_from_settings

    try:
        seed_list = [int(s) for s in seeds.split(",") if s.strip()]
    except ValueError:
        fail(f"--seeds must be comma-separated integers, got {seeds!r}", 2)
    if not seed_list or min(seed_list) < 0:
        fail(f"--seeds must be one or more integers >= 0, got {seeds!r}", 2)
    config = settings()
    options = request_from_flags(
        {"model": _model_dir(model), "k": k, "motion_strength": motion_strength, "frames": frames, "height": size, "width": size, "steps": steps}
    )
    with handled_errors():
        clip_encoder = clip_encoder_from_settings(config)
        generator = Generator(options.model, config)
        graph = generator.sar.graph
        if selling_points is not None:
            ids = parse_selling_points(selling_points, graph)
        else:
            ids = pick_selling_points(graph, generator.sar.meta.get("train_selling_points"), count, sample_seed)
        report = evaluate_generation(
            generator, ids, seeds=seed_list, videos_dir=videos_dir or default_videos_dir(config.cache_dir), clip_encoder=clip_encoder,
            options=options, variants=tuple(v.strip() for v in variants.split(",") if v.strip()), progress=sys.stderr.isatty(),
        )  # fmt: skip
    if out_file is not None:
        out_file.parent.mkdir(parents=True, exist_ok=True)
        out_file.write_text(json.dumps(report, indent=2, ensure_ascii=False), encoding="utf-8")
    pairs = len(report["pairs"])
    values, differences = table_rows(report)
    titles = (
        f"{len(ids)} selling point(s) × {len(seed_list)} seed(s) = {pairs} pair(s), mean ± std; plain = same backbone without knowledge",
        "difference from plain (variant − plain), paired by selling point and seed",
    )
    for title, (header, rows) in zip(titles, (values, differences)):
        table = Table(title=title)
        for index, name in enumerate(header):
            table.add_column(name, no_wrap=index == 0)
        for row in rows:
            table.add_row(*row)
        out.print(table)
    for reason in report["unavailable"].values():
        out.print(reason, highlight=False)
    for skipped in report["skipped"]:
        out.print(f"skipped {skipped['selling_point']} seed {skipped['seed']}: {skipped['error']}", highlight=False)
    out.print(
        f"videos (no provenance recorded): {report['videos_dir']}" + (f"; report: {out_file}" if out_file else ""),
        highlight=False,
    )


@generation_app.command("train-motion-lora")
def train_motion_lora_command(
    clip: Annotated[str, typer.Option("--clip", help="CreativeClip id whose video's motion the LoRA learns.")],
    model: ModelOption = None,
    steps: Annotated[int, typer.Option(min=1, help="Training steps (the paper: 400).")] = 400,
    rank: Annotated[int, typer.Option(min=1, help="LoRA rank.")] = 4,
    learning_rate: Annotated[float, typer.Option("--lr", min=0.0, help="AdamW learning rate.")] = 1e-4,
    seed: Annotated[int, typer.Option(min=0)] = 0,
    frames: Annotated[int, typer.Option(help="Frames the clip is resampled to (1-64; CogVideoX and Wan: 4·k + 1, e.g. 9).")] = 8,
    size: Annotated[int, typer.Option(help="Width and height in pixels (multiple of 8).")] = 64,
) -> None:
    """Train a motion LoRA on one clip (the attention that mixes frames, any family) and record it as a MotionLora node TRAINED_ON the clip."""
    from tqdm import tqdm

    from generation.backbones import backbone_family, load_backbone
    from generation.motion_lora import MotionLoraConfig, train_clip_lora
    from generation.pipeline import validate_request
    from kb.backends import open_store

    config = settings()
    model_dir = _model_dir(model)
    with writer_lock(config), handled_errors():
        with open_store(config, read_only=True) as store:
            if not store.query("MATCH (c:CreativeClip {id: $id}) RETURN c.id", {"id": clip}).rows:
                fail(f"no CreativeClip with id {clip!r}", 2)
        pipe = load_backbone(model_dir)
        validate_request(frames, size, size, 1, backbone_family(pipe))
        options = MotionLoraConfig(steps=steps, rank=rank, learning_rate=learning_rate, seed=seed)
        options.check()
        with open_store(config) as store, tqdm(total=steps, desc="motion LoRA", unit="step", file=sys.stderr, disable=not sys.stderr.isatty()) as bar:

            def on_step(step: int, loss: float) -> None:
                bar.set_postfix(loss=f"{loss:.4f}")
                bar.update()

            lora = train_clip_lora(store, pipe, clip, model_dir=model_dir, media_dir=config.media_dir, cache_dir=config.cache_dir,
                                   config=options, num_frames=frames, height=size, width=size, on_step=on_step)  # fmt: skip
    node = lora.node
    out.print(f"MotionLora {lora.id}" + (" (already trained: reused)" if lora.reused else ""), highlight=False)
    out.print(f"weights: {lora.weights}", highlight=False, soft_wrap=True)
    out.print(f"motion distillation loss on fixed draws: {node['loss_before']:.4f} before, "
              f"{node['loss_after']:.4f} after {node['steps']} steps", highlight=False)  # fmt: skip
