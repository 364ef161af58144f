"""The evaluation ACKB generator: deterministic, consistent relations, few shared words, imports into a real store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

from kb.eval_ackb import eval_rows, make_eval_ackb, token_overlap, tokens
from kb.eval_vocabulary import B_ROLL, CATEGORIES, IDEAS
from kb.graph import graph_from_directory
from kdcvg.errors import BadInputError

REPO = Path(__file__).resolve().parents[1]
SMALL = {"products": 16, "clips_per_product": 12}


def _files(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path) -> None:
    make_eval_ackb(tmp_path / "a", seed=3, **SMALL)
    make_eval_ackb(tmp_path / "b", seed=3, **SMALL)
    make_eval_ackb(tmp_path / "c", seed=5, **SMALL)
    assert _files(tmp_path / "a") == _files(tmp_path / "b")
    assert _files(tmp_path / "a") != _files(tmp_path / "c")


def test_default_size_and_shape() -> None:
    nodes, rels, idea_of = eval_rows()
    assert (len(nodes["Product"]), len(nodes["SellingPoint"]), len(nodes["Category"])) == (48, 240, 15)
    assert 1000 <= len(nodes["CreativeClip"]) <= 1100
    linked = {row["from"] for row in rels["ILLUSTRATES"]}
    unlinked_share = 1 - len(linked) / len(nodes["CreativeClip"])
    assert unlinked_share > 0.3, "every product needs many unlinked B-roll clips as distractors"
    statuses = {(type_, row["status"]) for type_ in ("ILLUSTRATES", "SAME_CLAIM") for row in rels[type_]}
    assert statuses == {(t, s) for t in ("ILLUSTRATES", "SAME_CLAIM") for s in ("approved", "rejected", "proposed")}
    by_clip = defaultdict(set)
    for row in rels["ILLUSTRATES"]:
        if row["status"] == "approved":
            by_clip[row["from"]].add(row["to"])
    assert any(len(sps) > 1 for sps in by_clip.values()), "some clips illustrate two selling points"
    per_idea = defaultdict(set)
    for sp, idea in idea_of.items():
        per_idea[idea].add(sp)
    assert sum(len(s) > 2 for s in per_idea.values()) >= 20, "ideas recur across products"


def test_relations_are_consistent() -> None:
    _, rels, idea_of = eval_rows(seed=1, **SMALL)
    product_of_sp = {row["to"]: row["from"] for row in rels["HAS_SELLING_POINT"]}
    product_of_clip = {row["from"]: row["to"] for row in rels["FEATURES"]}
    category = {row["from"]: row["to"] for row in rels["IN_CATEGORY"]}
    for row in rels["ILLUSTRATES"]:
        assert product_of_clip[row["from"]] == product_of_sp[row["to"]], (
            "a clip illustrates only its own product's selling points"
        )
    seen = set()
    for row in rels["SAME_CLAIM"]:
        a, b = row["from"], row["to"]
        assert a < b and (a, b) not in seen
        seen.add((a, b))
        assert product_of_sp[a] != product_of_sp[b]
        if row["status"] in ("approved", "rejected"):
            assert (idea_of[a] == idea_of[b]) == (row["status"] == "approved")
    hard = [
        r
        for r in rels["SAME_CLAIM"]
        if r["status"] == "rejected" and category[product_of_sp[r["from"]]] == category[product_of_sp[r["to"]]]
    ]
    assert hard, "rejected hard negatives: same category, different idea"
    same_idea_pairs = {
        (a, b) for a in idea_of for b in idea_of if a < b and idea_of[a] == idea_of[b] and product_of_sp[a] != product_of_sp[b]
    }
    assert same_idea_pairs == {(r["from"], r["to"]) for r in rels["SAME_CLAIM"] if idea_of[r["from"]] == idea_of[r["to"]]}


def test_claims_and_captions_share_few_words() -> None:
    nodes, rels, _ = eval_rows()
    overlap = token_overlap(nodes, rels)
    assert overlap["pairs"] > 500
    assert overlap["mean_overlap"] < 0.05
    assert overlap["pairs_sharing_a_token"] < 0.15


def test_token_overlap_counts_shared_words() -> None:
    nodes = {
        "SellingPoint": [{"id": "s", "text": "Keeps the coffee hot"}],
        "CreativeClip": [{"id": "c", "caption": "hot coffee pours", "tags": []}],
    }
    rels = {"ILLUSTRATES": [{"from": "c", "to": "s", "status": "approved"}]}
    assert tokens("Keeps the coffee hot") == {"keeps", "coffee", "hot"}
    assert token_overlap(nodes, rels) == {"pairs": 1, "mean_overlap": round(2 / 3, 4), "pairs_sharing_a_token": 1.0}


def test_seeds_of_other_parity_share_ideas_not_strings() -> None:
    even, _, even_ideas = eval_rows(seed=0, **SMALL)
    odd, _, odd_ideas = eval_rows(seed=1, **SMALL)
    texts = lambda n: {r["text"] for r in n["SellingPoint"]} | {r["caption"] for r in n["CreativeClip"]}
    assert not texts(even) & texts(odd)
    assert len(set(even_ideas.values()) & set(odd_ideas.values())) >= 10


def test_vocabulary_is_well_formed() -> None:
    ideas_used = {idea for spec in CATEGORIES for idea in spec.ideas}
    assert ideas_used == set(IDEAS), "every idea belongs to a category and every category idea exists"
    assert len(CATEGORIES) == 15
    for idea in IDEAS.values():
        assert len(idea.phrasings) >= 8 and len(idea.footage) >= 8, idea.key
        assert len(set(idea.phrasings)) == len(idea.phrasings) and len(set(idea.footage)) == len(idea.footage), idea.key
    assert len(set(B_ROLL)) == len(B_ROLL)


def test_bad_sizes_are_refused(tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match="products"):
        eval_rows(products=1)
    with pytest.raises(BadInputError, match="selling points per product"):
        eval_rows(selling_points_per_product=9)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    with pytest.raises(BadInputError, match="not an empty directory"):
        make_eval_ackb(tmp_path / "full", **SMALL)
    assert (tmp_path / "full" / "keep.txt").read_text() == "mine"


def test_cli_writes_and_a_ladybug_store_imports_it(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "KDCVG_DATA": str(tmp_path / "data"),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "PYTHONPATH": str(REPO),
    }
    env.pop("NEO4J_URI", None)
    cli = [sys.executable, "-m", "cli.main"]
    run = lambda *args: subprocess.run([*cli, *args], env=env, capture_output=True, text=True, timeout=300, check=False)
    made = run("kb", "make-eval", str(tmp_path / "ackb"), "--products", "6", "--seed", "2")
    assert made.returncode == 0, made.stderr
    assert "token overlap" in made.stdout
    manifest = json.loads((tmp_path / "ackb" / "manifest.json").read_text())
    assert manifest["generator"]["seed"] == 2 and manifest["nodes"]["Product"]["count"] == 6
    assert run("kb", "migrate").returncode == 0
    imported = run("kb", "import", str(tmp_path / "ackb"), "--no-progress")
    assert imported.returncode == 0, imported.stderr
    stats = run("kb", "stats", "--json")
    counts = json.loads(stats.stdout)
    graph = graph_from_directory(tmp_path / "ackb")
    assert counts["nodes"]["SellingPoint"] == len(graph.nodes["SellingPoint"])
    assert counts["relationships"]["SAME_CLAIM"] == len(graph.relationships["SAME_CLAIM"]) > 0
