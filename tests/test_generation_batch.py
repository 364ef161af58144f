"""`kdcvg generate --batch`: every line validated first, one load for the batch, JSON-lines results, failures named."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

from generation.api import generate
from generation.batch import BatchError, read_requests
from kdcvg.config import Settings, load_settings
from tests.conftest import generated_state, kdcvg_in

BOTTLE, EARBUDS = "prod-thermopeak-insulated-bottle", "prod-airbeat-wireless-earbuds"


def write_lines(path: Path, *lines: object) -> Path:
    """A request file: dicts as JSON, strings as they are."""
    path.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines), encoding="utf-8")
    return path


def test_batch_generates_every_request_with_its_options(mkr_world: tuple[Settings, Path], tmp_path: Path) -> None:
    settings, model = mkr_world
    files_before, nodes_before = generated_state(settings)
    requests = write_lines(
        tmp_path / "requests.jsonl",
        {"product": BOTTLE, "selling_point": "Leak-proof lid", "seed": 5},
        "",
        {"product": EARBUDS, "selling_point": "Active noise cancellation", "frames": 4, "size": 48, "motion_strength": 0.0},
    )
    out = tmp_path / "results.jsonl"
    result = kdcvg_in(
        settings, "generate", "--batch", str(requests), "--model", str(model), "--steps", "2", "--size", "32", "--out", str(out)
    )
    assert result.exit_code == 0, result.output
    assert result.stdout == "" and "2 of 2 video(s) generated" in result.stderr
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["line"], r["ok"]) for r in records] == [(1, True), (3, True)]
    shapes = [iio.imread(r["video_path"], index=None).shape for r in records]
    assert shapes == [(8, 32, 32, 3), (4, 48, 48, 3)]  # command-line defaults, overridden per line
    assert records[0]["request"] == {"product": BOTTLE, "selling_point": "Leak-proof lid", "k": 3, "seed": 5, "motion_strength": None,
                                     "motion_prior": "spectral", "frames": 8, "size": 32, "steps": 2, "motion_lora": None,
                                     "motion_lora_scale": 1.0}  # fmt: skip
    assert all(r["timings"]["total_s"] > 0 and len(r["reference_clips"]) == 3 for r in records)
    files_after, nodes_after = generated_state(settings)
    assert set(nodes_after) - set(nodes_before) == {r["video_id"] for r in records}
    assert len(files_after) == len(files_before) + 4  # mp4 + sidecar each
    # A batch video is the video a single call makes for the same request.
    single = generate(BOTTLE, "Leak-proof lid", model_dir=model, seed=5, height=32, width=32, steps=2, settings=settings)
    assert np.array_equal(iio.imread(single.video_path, index=None), iio.imread(records[0]["video_path"], index=None))


def test_results_go_to_stdout_as_json_lines_without_out(mkr_world: tuple[Settings, Path], tmp_path: Path) -> None:
    settings, model = mkr_world
    requests = write_lines(
        tmp_path / "r.jsonl", {"product": BOTTLE, "selling_point": "Leak-proof lid", "steps": 1, "frames": 2, "size": 32}
    )
    result = kdcvg_in(settings, "generate", "--batch", str(requests), "--model", str(model))
    assert result.exit_code == 0, result.output
    (record,) = [json.loads(line) for line in result.stdout.splitlines()]
    assert record["ok"] and Path(record["video_path"]).is_file() and record["video_id"].startswith("gv-")


def test_a_bad_file_lists_every_problem_and_generates_nothing(mkr_world: tuple[Settings, Path], tmp_path: Path) -> None:
    settings, model = mkr_world
    before = generated_state(settings)
    requests = write_lines(
        tmp_path / "bad.jsonl",
        {"product": BOTTLE, "selling_point": "Leak-proof lid"},  # fine
        "{not json",
        {"product": BOTTLE, "selling_point": "Leak-proof lid", "size": 60, "k": "3"},
        {"product": BOTTLE},
        {"product": BOTTLE, "selling_point": "Leak-proof lid", "colour": "red", "motion_strength": 2},
        "[1, 2]",
    )
    out = tmp_path / "results.jsonl"
    result = kdcvg_in(settings, "generate", "--batch", str(requests), "--model", str(model), "--out", str(out))
    assert result.exit_code == 2
    for expected in (f"{requests}:2: not valid JSON", f"{requests}:3:size: Input should be a multiple of 8", f"{requests}:3:k:",
                     f"{requests}:4:selling_point: Field required", f"{requests}:5:colour: Extra inputs", f"{requests}:5:motion_strength:",
                     f"{requests}:6: expected a JSON object"):  # fmt: skip
        assert expected in result.stderr, (expected, result.stderr)
    assert f"{requests}:1" not in result.stderr and "nothing generated" in result.stderr
    assert not out.exists() and generated_state(settings) == before


def test_unknown_products_and_selling_points_are_found_before_generating(
    mkr_world: tuple[Settings, Path], tmp_path: Path
) -> None:
    settings, model = mkr_world
    before = generated_state(settings)
    requests = write_lines(
        tmp_path / "unknown.jsonl",
        {"product": BOTTLE, "selling_point": "Leak-proof lid"},
        {"product": "prod-nope", "selling_point": "Leak-proof lid"},
        {"product": EARBUDS, "selling_point": "flies to the moon"},
    )
    result = kdcvg_in(settings, "generate", "--batch", str(requests), "--model", str(model))
    assert result.exit_code == 2
    assert f"{requests}:2:product: no Product with id 'prod-nope'" in result.stderr
    assert f"{requests}:3:selling_point: product '{EARBUDS}' has no selling point" in result.stderr
    assert result.stdout == "" and generated_state(settings) == before


def test_bad_defaults_and_missing_files_are_clear(tmp_path: Path) -> None:
    with pytest.raises(BatchError, match="command line: --size: Input should be a multiple of 8"):
        read_requests(tmp_path / "r.jsonl", {"size": 60})
    with pytest.raises(BatchError, match="no such request file"):
        read_requests(tmp_path / "absent.jsonl")
    with pytest.raises(BatchError, match="no requests"):
        read_requests(write_lines(tmp_path / "empty.jsonl", "", "  "))


def test_one_failing_request_keeps_the_others_and_is_named(mkr_world: tuple[Settings, Path], tmp_path: Path) -> None:
    """In a private copy of the data the clip videos are gone: the motion prior cannot work, plain T2V can."""
    settings, model = mkr_world
    shutil.copytree(settings.data_dir, tmp_path / "data")
    before = generated_state(settings)[1]
    copy = load_settings(environ={"KDCVG_DATA": str(tmp_path / "data")}, config_file=tmp_path / "absent.toml")
    shutil.rmtree(copy.media_dir / "clips")
    small = {"frames": 2, "size": 32, "steps": 1}
    requests = write_lines(
        tmp_path / "r.jsonl",
        {"product": EARBUDS, "selling_point": "Active noise cancellation", "motion_strength": 0.0, **small},
        {"product": BOTTLE, "selling_point": "Leak-proof lid", "motion_strength": 0.5, **small},
        {"product": BOTTLE, "selling_point": "Leak-proof lid", "motion_strength": 0.0, **small},
    )
    out = tmp_path / "results.jsonl"
    result = kdcvg_in(copy, "generate", "--batch", str(requests), "--model", str(model), "--out", str(out))
    assert result.exit_code == 1, result.output
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["line"], r["ok"]) for r in records] == [(1, True), (2, False), (3, True)]
    assert records[1]["error"].startswith("GenerationError: motion_strength > 0 needs a reference clip with a video file")
    assert all(Path(records[i]["video_path"]).is_file() for i in (0, 2))
    assert "2 of 3 video(s) generated" in result.stderr and "1 request(s) failed" in result.stderr
    assert f"{requests}:2 ({BOTTLE}, 'Leak-proof lid'): GenerationError" in result.stderr
    assert generated_state(copy)[1] == sorted([*before, records[0]["video_id"], records[2]["video_id"]])  # the two that worked


def test_frames_and_size_the_backbone_family_rejects_are_found_before_generating(
    mkr_world: tuple[Settings, Path], tmp_path: Path
) -> None:
    from generation.tiny import write_tiny_cogvideox

    settings, _ = mkr_world
    model = write_tiny_cogvideox(tmp_path / "tiny-cogvideox")
    before = generated_state(settings)
    requests = write_lines(
        tmp_path / "r.jsonl",
        {"product": BOTTLE, "selling_point": "Leak-proof lid", "frames": 9, "size": 32},  # fine for CogVideoX
        {"product": BOTTLE, "selling_point": "Leak-proof lid", "frames": 8, "size": 32},  # AnimateDiff would take it
        {"product": BOTTLE, "selling_point": "Leak-proof lid", "frames": 9, "size": 40},
    )
    result = kdcvg_in(settings, "generate", "--batch", str(requests), "--model", str(model))
    assert result.exit_code == 2, result.output
    assert f"{requests}:2:frames/size: cogvideox: num_frames must be 4·k + 1" in result.stderr
    assert f"{requests}:3:frames/size: height must be a multiple of 16" in result.stderr and f"{requests}:1" not in result.stderr
    assert generated_state(settings) == before


def test_the_backbone_defaults_to_the_setting_and_a_missing_one_says_how_to_get_it(mkr_world: tuple[Settings, Path]) -> None:
    settings, model = mkr_world
    before = generated_state(settings)
    args = ("generate", "--product", BOTTLE, "--selling-point", "Leak-proof lid", "--frames", "2", "--size", "32", "--steps", "1")
    missing = kdcvg_in(settings, *args)
    assert missing.exit_code == 2 and generated_state(settings) == before
    message = " ".join(missing.stderr.split())
    assert f"no generation backbone at {settings.models_dir / 'mkr-demo'}" in message and "make demo" in message
    configured = kdcvg_in(settings, *args, "--json", generation_model=model)  # KDCVG_GENERATION_MODEL, no --model
    assert configured.exit_code == 0, configured.output
    video = json.loads(configured.stdout)["video_path"]
    assert iio.imread(video, index=None).shape == (2, 32, 32, 3)
