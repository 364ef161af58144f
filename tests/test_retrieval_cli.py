"""SAR as users run it: train, retrieve (fresh text and known selling point), propose, feedback, eval."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

PRODUCTS = "aquasonic-electric-toothbrush,thermopeak-insulated-bottle,airbeat-wireless-earbuds"


def kdcvg(env: dict[str, str], *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([sys.executable, "-m", "cli.main", *args], env=env, capture_output=True, text=True, timeout=600)
    if ok:
        assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A small demo ACKB (3 products, 10 clips each) in a fresh data dir, with a trained checkpoint."""
    root = tmp_path_factory.mktemp("sar-cli")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NEO4J_", "KDCVG_"))}
    env.update(KDCVG_DATA=str(root / "data"), XDG_CONFIG_HOME=str(root / "config"))
    missing = kdcvg(env, "retrieve", "anything", ok=False)
    assert missing.returncode != 0 and ("kdcvg kb migrate" in missing.stderr or "retrieval train" in missing.stderr)
    kdcvg(env, "kb", "demo", "--products", PRODUCTS, "--clips-per-product", "10")
    no_checkpoint = kdcvg(env, "retrieve", "anything", ok=False)
    assert no_checkpoint.returncode == 2 and "kdcvg retrieval train" in no_checkpoint.stderr
    result = kdcvg(env, "retrieval", "train", "--epochs", "20")
    assert "held-out" in result.stdout and "checkpoint:" in result.stdout and "text share" in result.stdout
    assert (root / "data" / "models" / "sar" / "v0001" / "index").is_dir()
    return env


def test_train_if_changed_is_idempotent(trained: dict[str, str]) -> None:
    result = kdcvg(trained, "retrieval", "train", "--epochs", "20", "--if-changed")
    assert "nothing to do" in result.stdout
    assert not (Path(trained["KDCVG_DATA"]) / "models" / "sar" / "v0002").exists()


def test_a_generated_video_does_not_make_train_if_changed_retrain(trained: dict[str, str]) -> None:
    from generation.prompt import build_prompt
    from generation.provenance import record_generation
    from kb.backends import open_store
    from kb.graph import graph_from_store
    from kdcvg.config import load_settings

    settings = load_settings(environ=trained, config_file=Path(trained["XDG_CONFIG_HOME"]) / "absent.toml")
    with open_store(settings) as store:
        graph = graph_from_store(store)
        sp = next(s for s in graph.ids("SellingPoint") if graph.product_of_selling_point[s] == "prod-thermopeak-insulated-bottle")
        clips = sorted(c for c, p in graph.product_of_clip.items() if p == "prod-thermopeak-insulated-bottle")[:2]
        plan = build_prompt(graph, "prod-thermopeak-insulated-bottle", sp, clips)
        record_generation(store, video_id="gv-cli-1", video_path="generated/gv-cli-1.mp4", model_id="tiny", prompt_plan=plan,
                          seed=1, parameters={}, timings={}, selling_point_id=sp, reference_clip_ids=clips)  # fmt: skip
    result = kdcvg(trained, "retrieval", "train", "--epochs", "20", "--if-changed")
    assert "nothing to do" in result.stdout
    assert not (Path(trained["KDCVG_DATA"]) / "models" / "sar" / "v0002").exists()


def test_fresh_text_ranks_its_products_clips_first(trained: dict[str, str]) -> None:
    result = kdcvg(trained, "retrieve", "drinks stay ice cold all day", "--product", "prod-thermopeak-insulated-bottle", "-k", "5", "--json")
    payload = json.loads(result.stdout)
    clips = payload["results"]
    assert len(clips) == 5 and payload["checkpoint"].endswith("v0001")
    assert sum(c["product"] == "prod-thermopeak-insulated-bottle" for c in clips) >= 3
    assert all(c["explanation"] for c in clips) and clips[0]["score"] >= clips[-1]["score"]


def test_filters_restrict_results(trained: dict[str, str]) -> None:
    result = kdcvg(trained, "retrieve", "noise cancelling", "--category", "cat-audio", "--approved-only", "-k", "4", "--json")
    clips = json.loads(result.stdout)["results"]
    assert clips and all(c["product"] == "prod-airbeat-wireless-earbuds" for c in clips)
    only = kdcvg(trained, "retrieve", "battery", "--product", "prod-aquasonic-electric-toothbrush", "--only-product", "--json")
    assert {c["product"] for c in json.loads(only.stdout)["results"]} == {"prod-aquasonic-electric-toothbrush"}


def test_known_selling_point_and_proposals(trained: dict[str, str]) -> None:
    sp = json.loads(kdcvg(trained, "cypher", "MATCH (s:SellingPoint) RETURN s.id AS id ORDER BY id LIMIT 1", "--json").stdout)[0]["id"]
    count = f"MATCH (:CreativeClip)-[r:ILLUSTRATES]->(:SellingPoint {{id: '{sp}'}}) RETURN r.status AS status, count(*) AS n ORDER BY status"
    before = json.loads(kdcvg(trained, "cypher", count, "--json").stdout)
    result = json.loads(kdcvg(trained, "retrieve", "--selling-point", sp, "-k", "8", "--propose", "--json").stdout)
    after = json.loads(kdcvg(trained, "cypher", count, "--json").stdout)
    proposed_before = sum(r["n"] for r in before if r["status"] == "proposed")
    proposed_after = sum(r["n"] for r in after if r["status"] == "proposed")
    assert proposed_after - proposed_before == result["proposed"] > 0
    assert [r for r in after if r["status"] != "proposed"] == [r for r in before if r["status"] != "proposed"]  # judgements kept
    again = json.loads(kdcvg(trained, "retrieve", "--selling-point", sp, "-k", "8", "--propose", "--json").stdout)
    assert again["proposed"] == 0


def test_feedback_makes_a_new_version_and_eval_prints_all_methods(trained: dict[str, str]) -> None:
    result = kdcvg(trained, "retrieval", "feedback", "--epochs", "2")
    assert "kept the" in result.stdout and "v0002" in result.stdout
    meta = json.loads((Path(trained["KDCVG_DATA"]) / "models" / "sar" / "v0002" / "meta.json").read_text())
    assert meta["stage"] == "feedback" and meta["feedback"]["kept"] == "current" and "nothing to try" in meta["feedback"]["reason"]
    assert set(meta["feedback"]["validation"]) == {"current"}, "nothing judged since training: nothing to train again on"
    result = json.loads(kdcvg(trained, "retrieval", "eval", "--protocol", "link-completion", "--seeds", "2", "--json").stdout)
    assert [r["method"] for r in result["rows"]] == [
        "random", "popularity", "same-product", "same-product-unlinked", "same-category", "bm25", "sentence-cosine", "sp-knn",
        "GAT", "GAT+text", "GAT+FB", "GAT+FB+text",
    ]  # fmt: skip
    assert result["seeds"] == [0, 1]
    assert [d["seed"] for d in result["learned_runs"]] == [0, 1] and all(d["kept"] == "current" for d in result["learned_runs"])
    assert all(d["text_mix"] in (0.0, 0.25, 0.5, 1.0) and d["vote_mix"] in (0.0, 0.5, 1.0) for d in result["learned_runs"])
    assert all(0 <= r["Recall@10"]["low"] <= r["Recall@10"]["mean"] <= r["Recall@10"]["high"] <= 1 for r in result["rows"])


def test_feedback_retrains_on_judgements_made_since_the_checkpoint(trained: dict[str, str]) -> None:
    """Annotators judge after training; feedback knows which judgements are new (the checkpoint records what it learnt from),
    tries training again behind the gate, and the new version records what its model learnt from."""
    from kb.backends import open_store
    from kb.curation import Curator
    from kb.graph import graph_from_store
    from kdcvg.config import load_settings
    from retrieval.judgements import judgement_record

    root = Path(trained["KDCVG_DATA"]) / "models" / "sar"
    before = json.loads((root / "v0001" / "judgements.json").read_text())
    settings = load_settings(environ=trained, config_file=Path(trained["XDG_CONFIG_HOME"]) / "absent.toml")
    with open_store(settings) as store:
        graph = graph_from_store(store)
        status = {(r["from"], r["to"]): r["status"] for r in graph.relationships["ILLUSTRATES"]}
        sps = sorted(s for s in graph.ids("SellingPoint") if graph.product_of_selling_point[s] == "prod-airbeat-wireless-earbuds")
        clips = sorted(c for c, p in graph.product_of_clip.items() if p == "prod-airbeat-wireless-earbuds")
        curator = Curator(store, "ann")
        new = [(c, s) for s in sps for c in clips if status.get((c, s)) != "approved"][:3]
        for clip, sp in new:
            if (clip, sp) in status:
                curator.set_link_status(clip, sp, "approved")
            else:
                curator.link_clip(clip, sp, status="approved")
        now = judgement_record(graph_from_store(store))
    result = kdcvg(trained, "retrieval", "feedback", "--epochs", "2", "--candidate", "retrain")
    assert "3 judgements made or changed since this checkpoint trained" in result.stdout, result.stdout
    assert "retrain " in result.stdout.split("validation NDCG@10", 1)[1].splitlines()[0], result.stdout
    latest = root / (root / "latest").read_text().strip()
    meta = json.loads((latest / "meta.json").read_text())
    assert meta["feedback"]["kept"] in ("current", "retrain") and "update" not in meta["feedback"]["validation"]
    learnt = json.loads((latest / "judgements.json").read_text())
    assert learnt == (before if meta["feedback"]["kept"] == "current" else now) and before != now
    refused = kdcvg(trained, "retrieval", "feedback", "--candidate", "reinforce", ok=False)
    assert refused.returncode == 2 and "reinforce" in refused.stderr
    (latest / "judgements.json").unlink()  # as an older checkpoint: what it learnt from is unknown
    older = kdcvg(trained, "retrieval", "feedback")
    assert "does not record the judgements" in older.stdout and "kept the current model" in older.stdout, older.stdout


def test_train_chooses_the_text_share_unless_given(trained: dict[str, str]) -> None:
    """The served text share is chosen by cross-validation and recorded; a given share is kept, and --if-changed tells them apart."""
    root = Path(trained["KDCVG_DATA"]) / "models" / "sar"
    first = json.loads((root / "v0001" / "meta.json").read_text())
    assert first["text_mix_chosen_by"] == "cross-validation"
    assert json.loads((root / "v0001" / "config.json").read_text())["sar"]["text_mix"] in (0.0, 0.25, 0.5, 1.0)
    assert json.loads((root / "v0001" / "config.json").read_text())["sar"]["vote_mix"] in (0.0, 0.5, 1.0)
    given = kdcvg(trained, "retrieval", "train", "--epochs", "20", "--text-mix", "0.3", "--if-changed")
    assert "text share" not in given.stdout and "checkpoint:" in given.stdout
    latest = root / (root / "latest").read_text().strip()
    assert json.loads((latest / "config.json").read_text())["sar"]["text_mix"] == 0.3
    assert json.loads((latest / "meta.json").read_text())["text_mix_chosen_by"] == "given"
    assert "nothing to do" in kdcvg(trained, "retrieval", "train", "--epochs", "20", "--text-mix", "0.3", "--if-changed").stdout
    voted = kdcvg(trained, "retrieval", "train", "--epochs", "20", "--text-mix", "0.3", "--vote-mix", "0.5", "--if-changed")
    assert "nothing to do" not in voted.stdout, "another vote share is another model"
    latest = root / (root / "latest").read_text().strip()
    assert {k: v for k, v in json.loads((latest / "config.json").read_text())["sar"].items() if k.endswith("_mix") and k != "knn_mix"} == {
        "text_mix": 0.3, "vote_mix": 0.5}
    chosen = kdcvg(trained, "retrieval", "train", "--epochs", "20", "--if-changed")
    assert "text share" in chosen.stdout and "product groups" in chosen.stdout, chosen.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["retrieve", "lid", "--product", "prod-nope"], "prod-nope"),
        (["retrieve", "   "], "empty"),
        (["retrieve", "lid", "-k", "0"], "k must be between 1 and 100"),
        (["retrieve", "lid", "-k", "1000"], "k must be between 1 and 100"),
        (["retrieve", "lid", "--motion", "motion-moonwalk"], "motion-moonwalk"),
        (["retrieve", "--selling-point", "sp-nope"], "sp-nope"),
        (["retrieve"], "one of them"),
        (["retrieve", "lid", "--propose"], "--propose needs --selling-point"),
        (["retrieval", "eval", "--ackb", "/nonexistent"], "not a directory"),
    ],
)
def test_bad_input_gets_a_clear_error(trained: dict[str, str], args: list[str], message: str) -> None:
    # in-process (typer's runner) to spare a torch start-up per case; the same code paths as the command
    from typer.testing import CliRunner

    from cli.main import app

    result = CliRunner().invoke(app, args, env={"KDCVG_DATA": trained["KDCVG_DATA"], "XDG_CONFIG_HOME": trained["XDG_CONFIG_HOME"]})
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)  # no traceback
