"""The demo backbone: trained by our own code on a few real demo clips, saved, loaded and run like any backbone."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import typer
from safetensors.torch import load_file
from typer.testing import CliRunner

from cli.demo_backbone import train_demo
from cli.main import app
from generation import demo_backbone
from generation.api import generate_for
from generation.backbones import load_backbone
from generation.demo_backbone import (
    CARD,
    SHIPPED_DIR,
    DemoBackboneConfig,
    DemoTrainingError,
    folder_size,
    load_graph,
    read_card,
    train_demo_backbone,
)  # fmt: skip
from generation.demo_training import (
    TrainingClip,
    learn_merges,
    training_clips,
    training_content_hash,
    training_data_hash,
    write_tokenizer,
)
from generation.pipeline import generate_frames
from kdcvg.config import Settings, load_settings

PRODUCT = "thermopeak-insulated-bottle"
QUICK = {"steps": 30, "vae_steps": 20, "size": 32, "max_clips": 5}


def _settings(root: Path) -> tuple[Settings, dict[str, str]]:
    env = {"KDCVG_DATA": str(root / "data"), "XDG_CONFIG_HOME": str(root / "config")}
    return load_settings(environ=env, config_file=root / "absent.toml"), env


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, dict[str, str]]:
    """A demo ACKB of one product and 5 real rendered clips."""
    root = tmp_path_factory.mktemp("demo-backbone")
    settings, env = _settings(root)
    result = CliRunner().invoke(app, ["kb", "demo", "--products", PRODUCT, "--clips-per-product", "5"], env=env)
    assert result.exit_code == 0, result.output
    return settings, env


@pytest.fixture(scope="module")
def trained(demo: tuple[Settings, dict[str, str]], tmp_path_factory: pytest.TempPathFactory) -> Path:
    settings, _ = demo
    return train_demo_backbone(settings, tmp_path_factory.mktemp("models") / "mkr-demo", seed=3, **QUICK)


@pytest.fixture
def trained_copy(trained: Path, tmp_path: Path) -> Path:
    """A copy of the trained folder that a test may retrain or replace."""
    return Path(shutil.copytree(trained, tmp_path / "mkr-demo"))


def test_saved_folder_loads_and_generates_frames_of_the_requested_shape(
    demo: tuple[Settings, dict[str, str]], trained: Path
) -> None:
    settings, _ = demo
    clip = training_clips(load_graph(settings))[0]
    pipe = load_backbone(trained)
    frames, info = generate_frames(
        pipe, clip.prompt, clip.negative_prompt, reference_video=clip.video, motion_strength=0.5,
        num_frames=8, height=32, width=32, steps=2, seed=1,
    )  # fmt: skip
    assert frames.shape == (8, 32, 32, 3) and frames.dtype == np.uint8
    assert frames.std() > 0  # a picture, not a constant
    assert info["family"] == "animatediff"


def test_generate_uses_the_trained_folder_end_to_end(demo: tuple[Settings, dict[str, str]], trained: Path) -> None:
    settings, env = demo
    result = CliRunner().invoke(app, ["retrieval", "train", "--epochs", "3"], env=env)
    assert result.exit_code == 0, result.output
    selling_point = load_graph(settings).relationships["ILLUSTRATES"][1]["to"]
    video = generate_for(f"prod-{PRODUCT}", selling_point, model=trained, settings=settings, height=32, width=32, steps=2)
    assert iio.imread(video.video_path, index=None).shape == (8, 32, 32, 3)
    assert video.prompt.prompt.startswith("ThermoPeak")
    card = (trained / CARD).read_text()
    train_demo_backbone(settings, trained, seed=3, **QUICK)  # the graph gained a GeneratedVideo, the clips did not change
    assert (trained / CARD).read_text() == card


def test_card_records_data_config_measurements_and_what_the_model_is(
    demo: tuple[Settings, dict[str, str]], trained: Path
) -> None:
    settings, _ = demo
    card = read_card(trained)
    assert card is not None
    assert card["data_hash"] == training_data_hash(training_clips(load_graph(settings), max_clips=5))
    assert card["content_hash"] == training_content_hash(training_clips(load_graph(settings), max_clips=5))
    assert card["config"]["steps"] == 30 and card["config"]["seed"] == 3 and card["config"]["max_clips"] == 5
    assert card["clips"] == {"train": 4, "held_out": 1}
    assert "not a real text-to-video model" in card["statement"]
    assert 0 < card["size_bytes"] <= 30_000_000 and abs(card["size_bytes"] - folder_size(trained)) < 10_000
    assert all(count > 0 for count in card["parameters"].values())
    assert card["train_seconds"] > 0 and card["vae"]["scaling_factor"] > 0


def test_training_reduces_the_held_out_loss_and_the_vae_reconstructs_better(trained: Path) -> None:
    card = read_card(trained)
    assert card is not None
    assert card["denoiser"]["held_out_loss"] < card["denoiser"]["held_out_loss_untrained"]
    assert card["vae"]["held_out_psnr_db"] > card["vae"]["held_out_psnr_db_untrained"] + 1.0
    assert card["vae"]["final_loss"] < card["vae"]["first_loss"]


def test_same_seed_same_weights(demo: tuple[Settings, dict[str, str]], trained: Path, tmp_path: Path) -> None:
    settings, _ = demo
    again = train_demo_backbone(settings, tmp_path / "again", seed=3, **QUICK)
    for part in (
        "unet/diffusion_pytorch_model.safetensors",
        "vae/diffusion_pytorch_model.safetensors",
        "text_encoder/model.safetensors",
    ):
        first, second = load_file(trained / part), load_file(again / part)
        assert first.keys() == second.keys()
        assert all(np.array_equal(first[k].numpy(), second[k].numpy()) for k in first), part


def test_unchanged_data_and_config_skip_training_and_a_change_retrains(
    demo: tuple[Settings, dict[str, str]], trained_copy: Path
) -> None:
    settings, _ = demo
    before = (trained_copy / CARD).read_text()
    assert train_demo_backbone(settings, trained_copy, seed=3, **QUICK) == trained_copy
    assert (trained_copy / CARD).read_text() == before  # not retrained: the card (with its timestamp) is untouched
    changed = {**QUICK, "steps": 31}
    train_demo_backbone(settings, trained_copy, seed=3, **changed)
    assert json.loads((trained_copy / CARD).read_text())["config"]["steps"] == 31
    assert not [p for p in trained_copy.parent.iterdir() if p.name.startswith(".")]  # no staging or old folder left


def test_the_shipped_backbone_is_the_default_run_and_loads() -> None:
    """The folder in the repo must be what the default options train: else `make demo` would retrain it."""
    card = read_card(SHIPPED_DIR)
    assert card is not None and card["config"] == DemoBackboneConfig().to_dict()
    assert folder_size(SHIPPED_DIR) <= 30_000_000  # the limit for weights in the repo
    assert load_backbone(SHIPPED_DIR).unet is not None


def test_a_shipped_folder_for_the_same_clips_and_options_is_installed_not_retrained(
    demo: tuple[Settings, dict[str, str]], trained: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings, _ = demo
    monkeypatch.setattr(demo_backbone, "SHIPPED_DIR", trained)  # ship what the fixture trained
    said: list[str] = []
    installed = train_demo_backbone(settings, tmp_path / "installed", seed=3, progress=said.append, **QUICK)
    assert len(said) == 1 and said[0].startswith("installing the shipped demo backbone")
    assert read_card(installed) == read_card(trained)
    weights = sorted(p.relative_to(trained) for p in trained.rglob("*.safetensors"))
    assert weights and all((installed / w).read_bytes() == (trained / w).read_bytes() for w in weights)
    other = train_demo_backbone(settings, tmp_path / "other", seed=4, progress=said.append, **QUICK)  # other options: trains
    assert len(said) > 2 and read_card(other)["config"]["seed"] == 4  # type: ignore[index]


def test_cli_trains_then_skips_with_if_changed_then_force_retrains(demo: tuple[Settings, dict[str, str]], tmp_path: Path) -> None:
    _, env = demo
    cli = typer.Typer()
    cli.command()(train_demo)
    out = tmp_path / "cli-model"
    args = ["--steps", "2", "--vae-steps", "2", "--out", str(out)]
    runner = CliRunner()
    first = runner.invoke(cli, args, env=env)
    assert first.exit_code == 0, first.output
    assert "PSNR" in first.output and (out / "model_index.json").is_file()
    stamp = read_card(out)["created_at"]  # type: ignore[index]
    second = runner.invoke(cli, args, env=env)
    assert second.exit_code == 0 and "nothing to do" in second.output
    assert read_card(out)["created_at"] == stamp  # type: ignore[index]
    forced = runner.invoke(cli, [*args, "--force"], env=env)
    assert forced.exit_code == 0 and "nothing to do" not in forced.output
    assert read_card(out)["created_at"] != stamp  # type: ignore[index]


def test_a_failure_midway_leaves_the_previous_folder_and_no_partial_one(
    demo: tuple[Settings, dict[str, str]], trained_copy: Path
) -> None:
    settings, _ = demo
    before = (trained_copy / CARD).read_text()

    def interrupt(message: str) -> None:
        if message.startswith("denoiser"):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_demo_backbone(settings, trained_copy, seed=5, force=True, progress=interrupt, **QUICK)
    assert (trained_copy / CARD).read_text() == before
    assert not [p for p in trained_copy.parent.iterdir() if p.name.startswith(".")]


def test_missing_demo_data_is_a_clear_error(tmp_path: Path) -> None:
    settings, env = _settings(tmp_path)
    with pytest.raises(DemoTrainingError, match="kdcvg kb demo"):
        train_demo_backbone(settings, tmp_path / "model", **QUICK)
    cli = typer.Typer()
    cli.command()(train_demo)
    result = CliRunner().invoke(cli, ["--steps", "2"], env=env)
    assert result.exit_code == 2 and "kdcvg kb demo" in result.output
    assert not (tmp_path / "model").exists() and not settings.generation_model_dir.exists()


def test_a_store_without_clips_is_a_clear_error(tmp_path: Path) -> None:
    settings, env = _settings(tmp_path)
    assert CliRunner().invoke(app, ["kb", "migrate"], env=env).exit_code == 0
    with pytest.raises(DemoTrainingError, match="has 0 clip"):
        train_demo_backbone(settings, tmp_path / "model", **QUICK)
    assert not (tmp_path / "model").exists()


def test_bad_options_are_refused_before_any_work(demo: tuple[Settings, dict[str, str]], tmp_path: Path) -> None:
    settings, _ = demo
    for options, message in (
        ({"steps": 0}, "steps"),
        ({"size": 40}, "size"),
        ({"frames": 1}, "frames"),
        ({"max_clips": 1}, "max_clips"),
    ):
        with pytest.raises(DemoTrainingError, match=message):
            train_demo_backbone(settings, tmp_path / "model", **{**QUICK, **options})
    assert not (tmp_path / "model").exists()


def test_tokenizer_keeps_every_prompt_word_whole_and_within_the_context(
    demo: tuple[Settings, dict[str, str]], tmp_path: Path
) -> None:
    settings, _ = demo
    clips = training_clips(load_graph(settings))
    texts = [text for clip in clips for text in (clip.prompt, clip.negative_prompt)]
    tokenizer = write_tokenizer(texts, tmp_path / "tok")
    assert learn_merges(texts) == learn_merges(list(texts))  # deterministic
    for clip in clips:
        ids = tokenizer(clip.prompt).input_ids
        words = tokenizer.backend_tokenizer.pre_tokenizer.pre_tokenize_str(clip.prompt.lower())
        assert len(ids) == len(words) + 2 <= tokenizer.model_max_length  # one token a word, plus BOS and EOS
        assert tokenizer.decode(ids, skip_special_tokens=True).replace(" ", "") == clip.prompt.lower().replace(" ", "")
        tokens = tokenizer.convert_ids_to_tokens(ids)
        assert "camera</w>" in tokens and "motion</w>" in tokens  # the motion phrase, at the end, survives
    unseen = tokenizer("Zorblax 3000 keeps tea warm").input_ids
    assert tokenizer.decode(unseen, skip_special_tokens=True).replace(" ", "") == "zorblax3000keepsteawarm"


def test_the_shipped_backbone_is_matched_by_ids_and_prompts_not_by_encoder_bytes(tmp_path: Path) -> None:
    """Another ffmpeg may encode the same demo clips to other bytes: that must not force a 25-minute retrain."""
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"first encoding")
    clips = [TrainingClip("clip-1", video, "a bottle, zoom in", "blurry")]
    data, content = training_data_hash(clips), training_content_hash(clips)
    video.write_bytes(b"another encoder's bytes")
    assert training_data_hash(clips) != data and training_content_hash(clips) == content
    renamed = [TrainingClip("clip-1", video, "a bottle, pan left", "blurry")]
    assert training_content_hash(renamed) != content  # other prompts: another model
