"""GenerationRequest: one validated request for the CLI, batch lines, the API, evaluation and the app."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from generation.api import generate_for
from generation.backbones import FAMILIES, check_request
from generation.request import GenerationError, GenerationOptions, GenerationRequest, RequestError
from kdcvg.config import Settings
from kdcvg.errors import BadInputError
from tests.conftest import generated_state, kdcvg_in

BOTTLE, LEAK = "prod-thermopeak-insulated-bottle", "Leak-proof lid"
WHAT = {"product": BOTTLE, "selling_point": LEAK}
DOC = Path(__file__).resolve().parents[1] / "docs" / "generation-request.md"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("product", ""),
        ("selling_point", 3),
        ("model", 12),
        ("k", 0),
        ("k", 101),
        ("k", "3"),
        ("seed", -1),
        ("seed", 2**63),
        ("seed", True),
        ("motion_prior", "freeinit"),
        ("motion_strength", 1.5),
        ("motion_strength", float("nan")),
        ("frames", 0),
        ("frames", 82),
        ("frames", 8.0),
        ("height", 60),
        ("height", 16),
        ("width", 1032),
        ("steps", 0),
        ("steps", 1001),
        ("guidance_scale", -1.0),
        ("guidance_scale", float("inf")),
        ("ip_adapter_scale", 2.0),
        ("motion_lora", ""),
        ("motion_lora", "m" * 201),
        ("motion_lora_scale", 2.5),
        ("colour", "red"),
    ],
)
def test_each_bad_field_is_refused_with_its_name(field: str, value: object) -> None:
    with pytest.raises(RequestError) as caught:
        GenerationRequest.parse({**WHAT, field: value})
    assert [name for name, _ in caught.value.problems] == [field]
    assert str(caught.value).startswith(f"{field}: ") and isinstance(caught.value, BadInputError)


def test_every_problem_is_listed_and_size_is_the_shorthand_for_height_and_width() -> None:
    with pytest.raises(RequestError) as caught:
        GenerationRequest.parse({"product": BOTTLE, "frames": 0, "size": 36})
    assert {name for name, _ in caught.value.problems} == {"selling_point", "frames", "size"}  # size named as given, once
    assert GenerationRequest.parse({**WHAT, "size": 48}) == GenerationRequest.parse({**WHAT, "height": 48, "width": 48})
    with pytest.raises(RequestError, match="^size: give size, or height and width, not both"):
        GenerationRequest.parse({**WHAT, "size": 48, "width": 48})
    defaults = GenerationOptions.parse({"size": 32, "seed": 4})
    assert GenerationRequest.parse({**WHAT, "size": 48}, defaults).model_dump(include={"height", "width", "seed"}) == {
        "height": 48, "width": 48, "seed": 4
    }  # a line's own size wins over the defaults' height and width


def test_the_request_is_frozen_and_resolves_the_motion_strength() -> None:
    request = GenerationRequest.parse({**WHAT, "motion_prior": "inversion"})
    with pytest.raises(ValueError):
        request.seed = 3  # type: ignore[misc]
    assert request.strength() == 0.7 and request.model_copy(update={"motion_strength": 0.0}).strength() == 0.0
    assert request.frame_options() == {"num_frames": 8, "height": 64, "width": 64, "steps": 4, "guidance_scale": 7.5}
    assert "model" not in request.recorded() and json.dumps(request.recorded())


@pytest.mark.parametrize(
    ("options", "fields"),
    [
        ({"frames": 8}, ["frames"]),
        ({"frames": 9, "height": 40, "width": 72}, ["height", "width"]),
        ({"frames": 9, "height": 48, "width": 64}, []),
    ],
)
def test_the_backbone_family_rules_name_the_field(options: dict, fields: list[str]) -> None:
    request = GenerationRequest.parse({**WHAT, **options})
    check_request(request, FAMILIES["AnimateDiffPipeline"])  # any frame count, multiples of 8
    if not fields:
        check_request(request, FAMILIES["CogVideoXPipeline"])
        return
    with pytest.raises(GenerationError) as caught:
        check_request(request, FAMILIES["CogVideoXPipeline"])
    assert [name for name, _ in caught.value.problems] == fields and "cogvideox" in str(caught.value)


def test_each_family_caps_its_own_length() -> None:
    request = GenerationRequest.parse({**WHAT, "frames": 81, "height": 64, "width": 64})
    check_request(request, FAMILIES["WanPipeline"])  # Wan 2.1 takes 81 frames (4·20 + 1)
    with pytest.raises(GenerationError) as caught:
        check_request(request, FAMILIES["CogVideoXPipeline"])
    assert [name for name, _ in caught.value.problems] == ["frames"] and "at most 64" in str(caught.value)


def test_the_documentation_names_every_field_with_its_default() -> None:
    rows = dict(re.findall(r"^\| `(\w+)` \| `([^`]*)` \|", DOC.read_text(encoding="utf-8"), flags=re.MULTILINE))
    fields = GenerationRequest.model_fields
    assert set(rows) == set(fields) | {"size"}
    for name, field in fields.items():
        expected = "required" if field.is_required() else json.dumps(field.default)
        assert rows[name] == expected, name


def test_cli_batch_and_api_record_the_same_request(mkr_world: tuple[Settings, Path], tmp_path: Path) -> None:
    """The same options through each door: the provenance records one identical request (and the same video)."""
    settings, model = mkr_world
    options = {"seed": 2, "k": 2, "motion_prior": "inversion", "motion_strength": 0.6, "frames": 2, "steps": 1,
               "guidance_scale": 5.0, "ip_adapter_scale": 0.25}  # fmt: skip
    single = kdcvg_in(settings, "generate", "--product", BOTTLE, "--selling-point", LEAK, "--model", str(model), "--seed", "2",
                      "-k", "2", "--motion-prior", "inversion", "--motion-strength", "0.6", "--frames", "2", "--size", "32",
                      "--steps", "1", "--guidance-scale", "5", "--ip-adapter-scale", "0.25", "--json")  # fmt: skip
    assert single.exit_code == 0, single.output
    from_cli = json.loads(single.stdout)["parameters"]["request"]
    requests = tmp_path / "requests.jsonl"
    requests.write_text(json.dumps({**WHAT, **options, "size": 32}) + "\n", encoding="utf-8")
    out = tmp_path / "results.jsonl"
    batch = kdcvg_in(settings, "generate", "--batch", str(requests), "--model", str(model), "--out", str(out))
    assert batch.exit_code == 0, batch.output
    (record,) = [json.loads(line) for line in out.read_text().splitlines()]
    from_batch = json.loads(Path(record["sidecar_path"]).read_text())["parameters"]["request"]
    from_api = generate_for(BOTTLE, LEAK, model=model, settings=settings, height=32, width=32, **options).parameters["request"]
    expected = GenerationRequest.parse({**WHAT, **options, "size": 32}).recorded()
    assert from_cli == from_batch == from_api == expected
    assert expected["guidance_scale"] == 5.0 and expected["ip_adapter_scale"] == 0.25
    # The batch's command-line defaults carry every option, including those a line could not set before.
    requests.write_text(json.dumps({**WHAT, "frames": 2, "size": 32, "steps": 1}) + "\n", encoding="utf-8")
    batch = kdcvg_in(settings, "generate", "--batch", str(requests), "--model", str(model), "--out", str(out),
                     "--guidance-scale", "3", "--ip-adapter-scale", "0.75")  # fmt: skip
    assert batch.exit_code == 0, batch.output
    (record,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert record["request"]["guidance_scale"] == 3.0 and record["request"]["ip_adapter_scale"] == 0.75


def test_bad_flags_name_the_flag_and_a_line_for_another_backbone_is_refused(
    mkr_world: tuple[Settings, Path], tmp_path: Path
) -> None:
    settings, model = mkr_world
    before = generated_state(settings)
    args = ("generate", "--product", BOTTLE, "--selling-point", LEAK, "--model", str(model))
    for flags, message in (
        (("--size", "36"), "--size: Input should be a multiple of 8, got 36"),
        (("-k", "0"), "-k: Input should be greater than or equal to 1, got 0"),
        (("--guidance-scale", "nan"), "--guidance-scale: Input should be a finite number"),
        (("--motion-lora-scale", "3"), "--motion-lora-scale: Input should be less than or equal to 2"),
    ):
        result = kdcvg_in(settings, *args, *flags)
        assert result.exit_code == 2 and message in " ".join(result.stderr.split()), (flags, result.output)
    requests = tmp_path / "r.jsonl"
    requests.write_text(json.dumps({**WHAT, "model": str(tmp_path / "other-backbone")}) + "\n", encoding="utf-8")
    result = kdcvg_in(settings, "generate", "--batch", str(requests), "--model", str(model))
    assert result.exit_code == 2 and f"{requests}:1:model: the batch runs on one backbone" in " ".join(result.stderr.split())
    assert generated_state(settings) == before


def test_the_api_takes_settings_and_a_request_and_checks_the_backbone_first(mkr_world: tuple[Settings, Path], tmp_path: Path) -> None:
    from generation.api import generate
    from generation.tiny import write_tiny_cogvideox

    settings, _ = mkr_world
    before = generated_state(settings)
    cogvideox = write_tiny_cogvideox(tmp_path / "tiny-cogvideox")
    with pytest.raises(TypeError, match="GenerationRequest"):
        generate(settings, {**WHAT})  # type: ignore[arg-type]
    with pytest.raises(RequestError, match="^frames: cogvideox needs 4·k \\+ 1 frames"):
        generate(settings, GenerationRequest.parse({**WHAT, "model": cogvideox, "frames": 8}))
    assert generated_state(settings) == before
