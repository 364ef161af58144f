"""Selling-point relations (SAME_CLAIM) on a real store: curated in either order, judged, audited, proposed by SAR."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from generation.demo_backbone import SHIPPED_DIR, read_card
from generation.demo_training import training_clips, training_content_hash
from kb import browse
from kb import repository as repo
from kb.audit import AuditEvent, count_audit, list_audit
from kb.curation import Curator, claim_pair
from kb.demo import build as demo
from kb.demo.spec import SAME_CLAIMS
from kb.graph import AckbGraph, graph_from_directory, graph_from_store
from kb.interchange import import_ackb
from kb.ladybug_store import LadybugStore
from kb.records import SameClaim
from kb.repository import RecordValidationError, StaleWriteError
from kb.store import ConflictError, GraphStore, NotFoundError
from kdcvg.config import Settings
from kdcvg.errors import BadInputError
from retrieval.service import claim_candidates
from tests.conftest import kdcvg_in, ladybug_world, snapshot

# selling points of the small synthetic ACKB: two products, and a second one of the first product
SP_A, SP_B, SP_A2 = "sp-0000000-1", "sp-0000001-1", "sp-0000000-2"


@pytest.fixture
def loaded(store: GraphStore, small_ackb: Path, media_dir: Path) -> GraphStore:
    import_ackb(store, small_ackb, media_dir)
    store.write(lambda tx: tx.run("MATCH ()-[r:SAME_CLAIM]->() DELETE r"))  # start with no relations
    return store


@pytest.fixture
def alice(loaded: GraphStore, media_dir: Path) -> Curator:
    return Curator(loaded, "alice", media_dir)


def events(store: GraphStore, **filters: str) -> list[AuditEvent]:
    return list_audit(store, limit=500, **filters).events


def stored(store: GraphStore) -> list[dict]:
    """Every SAME_CLAIM row as stored: (from, to, status, annotator)."""
    query = "MATCH (a:SellingPoint)-[r:SAME_CLAIM]->(b:SellingPoint) RETURN a.id AS a, b.id AS b, r.status AS status, r.annotator AS who ORDER BY a.id, b.id"
    return store.read(lambda tx: tx.run(query))


def test_claim_pair_puts_either_order_in_stored_order_and_refuses_a_pair_with_itself() -> None:
    assert claim_pair(SP_B, SP_A) == claim_pair(SP_A, SP_B) == (SP_A, SP_B)
    for bad in ((SP_A, SP_A), ("", SP_A), (SP_A, None)):
        with pytest.raises(RecordValidationError) as caught:
            claim_pair(*bad)  # type: ignore[arg-type]
        assert caught.value.field in ("from", "to")


def test_relating_in_reverse_order_stores_one_row_smaller_id_first_and_audits_it(alice: Curator, loaded: GraphStore) -> None:
    row = alice.relate_claims(SP_B, SP_A, score=0.75)
    assert (row["from"], row["to"], row["status"], row["annotator"], row["score"]) == (SP_A, SP_B, "proposed", "alice", 0.75)
    assert stored(loaded) == [{"a": SP_A, "b": SP_B, "status": "proposed", "who": "alice"}]
    with pytest.raises(ConflictError, match="already related"):
        alice.relate_claims(SP_A, SP_B)
    [event] = events(loaded)
    assert (event.action, event.entity_label, event.entity_id, event.before, event.after) == ("link", "SAME_CLAIM", f"{SP_A}->{SP_B}", None, row)


def test_bad_pairs_are_refused_with_clear_errors_and_nothing_is_written(alice: Curator, loaded: GraphStore, media_dir: Path, tmp_path: Path) -> None:
    before = snapshot(loaded, media_dir, tmp_path)
    with pytest.raises(RecordValidationError, match="itself"):
        alice.relate_claims(SP_A, SP_A)
    with pytest.raises(NotFoundError, match="no SellingPoint with id 'sp-missing'"):
        alice.relate_claims("sp-missing", SP_A)
    with pytest.raises(NotFoundError, match="no SellingPoint with id 'prod-0000000'"):  # a product is not a selling point
        alice.relate_claims(SP_A, "prod-0000000")
    with pytest.raises(NotFoundError, match="no SellingPoint with id 'sp-missing'"):
        alice.set_claim_status(SP_A, "sp-missing", "approved")
    with pytest.raises(NotFoundError, match="not linked by SAME_CLAIM"):
        alice.set_claim_status(SP_A, SP_B, "approved")
    with pytest.raises(NotFoundError, match="no SellingPoint with id 'sp-missing'"):
        alice.unrelate_claims("sp-missing", SP_B)
    with pytest.raises(NotFoundError, match="not linked"):
        alice.unrelate_claims(SP_B, SP_A)
    with pytest.raises(RecordValidationError) as invalid:
        alice.relate_claims(SP_A, SP_B, status="maybe")
    assert invalid.value.field == "status"
    with pytest.raises(NotFoundError, match="sp-missing"):  # one unknown id in a batch: nothing of it is written
        alice.propose_claims([(SP_A, SP_B, 0.9), (SP_A, "sp-missing", 0.8)])
    with pytest.raises(RecordValidationError, match="itself"):
        alice.propose_claims([(SP_A, SP_B, 0.9), (SP_B, SP_B, 0.8)])
    assert snapshot(loaded, media_dir, tmp_path) == before and count_audit(loaded) == 0


def test_judging_in_either_order_is_attributed_and_audited(loaded: GraphStore, media_dir: Path) -> None:
    sar, bob = Curator(loaded, "sar-model", media_dir), Curator(loaded, "bob", media_dir)
    proposed = sar.relate_claims(SP_A, SP_B, score=0.6)
    rejected = bob.set_claim_status(SP_B, SP_A, "rejected")
    approved = bob.set_claim_status(SP_A, SP_B, "approved")
    assert (approved["status"], approved["annotator"], approved["score"]) == ("approved", "bob", 0.6)
    assert approved["updated_at"] > rejected["updated_at"] > proposed["updated_at"]
    assert stored(loaded) == [{"a": SP_A, "b": SP_B, "status": "approved", "who": "bob"}]
    changes = events(loaded, action="set_status")
    assert [(e.entity_label, e.entity_id, e.before["status"], e.after["status"]) for e in reversed(changes)] == [
        ("SAME_CLAIM", f"{SP_A}->{SP_B}", "proposed", "rejected"),
        ("SAME_CLAIM", f"{SP_A}->{SP_B}", "rejected", "approved"),
    ]
    with pytest.raises(RecordValidationError) as invalid:
        bob.set_claim_status(SP_A, SP_B, "maybe")
    assert invalid.value.field == "status"


def test_a_stale_judgement_is_refused_and_both_values_survive_in_audit(loaded: GraphStore, media_dir: Path) -> None:
    alice, bob = Curator(loaded, "alice", media_dir), Curator(loaded, "bob", media_dir)
    seen = alice.relate_claims(SP_A, SP_B)
    winner = alice.set_claim_status(SP_A, SP_B, "approved", expected_updated_at=seen["updated_at"])
    with pytest.raises(StaleWriteError, match="alice") as caught:
        bob.set_claim_status(SP_B, SP_A, "rejected", expected_updated_at=seen["updated_at"])
    assert isinstance(caught.value, ConflictError) and caught.value.current == winner
    assert stored(loaded)[0]["status"] == "approved"
    conflict = events(loaded, action="conflict")[0]
    assert (conflict.actor, conflict.entity_label, conflict.entity_id) == ("bob", "SAME_CLAIM", f"{SP_A}->{SP_B}")
    assert conflict.before == winner
    assert conflict.after == {"attempted_action": "set_status", "expected_updated_at": seen["updated_at"], "values": {"status": "rejected"}}


def test_unrelate_in_either_order_removes_the_row_and_audits_it(alice: Curator, loaded: GraphStore) -> None:
    row = alice.relate_claims(SP_A, SP_B)
    alice.unrelate_claims(SP_B, SP_A)
    assert stored(loaded) == []
    assert [e.action for e in events(loaded)] == ["unlink", "link"] and events(loaded)[0].before == row
    alice.relate_claims(SP_B, SP_A)  # may be related again
    assert len(stored(loaded)) == 1


def test_proposals_never_touch_a_related_pair_and_keep_the_best_score_of_a_repeated_pair(loaded: GraphStore, media_dir: Path) -> None:
    bob, sar = Curator(loaded, "bob", media_dir), Curator(loaded, "sar-model", media_dir)
    judged = bob.relate_claims(SP_A, SP_B, status="rejected")
    written = sar.propose_claims([(SP_B, SP_A, 0.99), (SP_A2, SP_B, 0.4), (SP_B, SP_A2, 0.7), (SP_A, SP_A2, float("nan")), (SP_A, "sp-0000002-0", 3.0)])
    assert written == 3

    def get(a: str, b: str) -> dict:
        return loaded.read(lambda tx: repo.same_claim.get_in(tx, a, b))

    assert get(SP_A, SP_B) == judged  # the judgement survives exactly
    assert (get(SP_A2, SP_B)["score"], get(SP_A2, SP_B)["status"], get(SP_A2, SP_B)["annotator"]) == (0.7, "proposed", "sar-model")
    assert get(SP_A, SP_A2)["score"] == 0.0 and get(SP_A, "sp-0000002-0")["score"] == 1.0  # not finite -> 0, clamped to [0, 1]
    assert sar.propose_claims([(SP_A2, SP_B, 0.1)]) == 0 and get(SP_A2, SP_B)["score"] == 0.7
    assert sorted(e.entity_id for e in events(loaded, action="link") if e.actor == "sar-model") == sorted(
        [f"{SP_A2}->{SP_B}", f"{SP_A}->{SP_A2}", f"{SP_A}->sp-0000002-0"]
    )


# ---- SAR proposes relations: retrieval.service and `kdcvg retrieval propose-claims` ----------------


@pytest.fixture
def world(tmp_path: Path, small_ackb: Path) -> Settings:
    """A private data dir whose Ladybug store holds the small ACKB without relations (closed again)."""
    settings = ladybug_world(tmp_path, small_ackb)
    with LadybugStore(settings.ladybug_path) as store:
        store.write(lambda tx: tx.run("MATCH ()-[r:SAME_CLAIM]->() DELETE r"))
    return settings


def relations(settings: Settings) -> dict[tuple[str, str], dict]:
    """Every stored SAME_CLAIM row by (from, to)."""
    with LadybugStore(settings.ladybug_path, read_only=True) as store:
        graph = graph_from_store(store)
    return {(r["from"], r["to"]): r for r in graph.relationships["SAME_CLAIM"]}


def test_candidates_are_the_text_nearest_selling_points_of_other_products(small_ackb: Path) -> None:
    graph = graph_from_directory(small_ackb)
    ids = graph.ids("SellingPoint")
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(len(ids), 8)).astype(np.float32)
    twin = ids.index("sp-0000003-4")
    vectors[ids.index(SP_A)] = vectors[twin] + 0.01  # SP_A's claim in other words, on another product
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    found = claim_candidates(graph, vectors, [SP_A], top=4, min_score=0.0)
    owner = graph.product_of_selling_point
    assert len(found) == 4 and found[0].other == "sp-0000003-4" and found[0].score > 0.99
    assert all(owner[c.other] != owner[SP_A] for c in found)  # never its own product's selling points
    cosines = vectors @ vectors[ids.index(SP_A)]
    best_elsewhere = sorted(((float(cosines[i]), s) for i, s in enumerate(ids) if owner[s] != owner[SP_A]), reverse=True)[:4]
    assert [c.other for c in found] == [s for _, s in best_elsewhere]
    assert [round(c.score, 6) for c in found] == [round((cos + 1) / 2, 6) for cos, _ in best_elsewhere]
    assert claim_candidates(graph, vectors, [SP_A], top=4, min_score=found[1].score + 1e-6) == found[:1]
    both = claim_candidates(graph, vectors, [SP_A, "sp-0000003-4"], top=1, min_score=0.0)
    assert [(c.selling_point, c.other) for c in both] == [(SP_A, "sp-0000003-4")]  # each pair once
    for points, top, min_score, error in (([SP_A], 0, 0.0, BadInputError), ([SP_A], 1, 1.5, BadInputError), (["sp-missing"], 1, 0.0, NotFoundError)):
        with pytest.raises(error):
            claim_candidates(graph, vectors, points, top=top, min_score=min_score)


def test_cli_proposes_claims_keeps_judged_pairs_and_a_rerun_writes_nothing(world: Settings) -> None:
    with LadybugStore(world.ladybug_path) as store:
        Curator(store, "bob").relate_claims(SP_A, SP_B, status="rejected", score=0.5)
        judged = store.read(lambda tx: repo.same_claim.get_in(tx, SP_A, SP_B))
    result = kdcvg_in(world, "retrieval", "propose-claims", "--selling-point", SP_A, "--top", "3", "--min-score", "0")
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    pairs = [line.split("\t") for line in lines[:-1]]
    assert len(pairs) == 3 and all(p[0] == SP_A and not p[1].startswith("sp-0000000-") for p in pairs)
    assert all(0.0 <= float(p[2]) <= 1.0 for p in pairs)
    stored_now = relations(world)
    assert stored_now[(SP_A, SP_B)] == judged  # a judged pair is never overwritten
    new = [claim_pair(p[0], p[1]) for p in pairs if p[3] == "proposed"]
    assert new and all(stored_now[pair]["status"] == "proposed" and stored_now[pair]["annotator"] == "sar-model" for pair in new)
    assert f"{len(new)} new proposed" in lines[-1]
    again = kdcvg_in(world, "retrieval", "propose-claims", "--selling-point", SP_A, "--top", "3", "--min-score", "0", "--summary")
    assert again.exit_code == 0 and again.output.strip().splitlines() == [again.output.strip()] and "0 new proposed" in again.output
    assert relations(world) == stored_now
    everything = kdcvg_in(world, "retrieval", "propose-claims", "--all", "--top", "1", "--min-score", "0", "--summary")
    assert everything.exit_code == 0, everything.output
    with LadybugStore(world.ladybug_path, read_only=True) as store:
        audited = [e for e in list_audit(store, limit=500).events if e.actor == "sar-model"]
    assert len(audited) == len(relations(world)) - 1  # every proposal audited; bob's relation is his


@pytest.mark.parametrize(
    "args, message",
    [
        ([], "--selling-point ID or --all"),
        (["--all", "--selling-point", SP_A], "--selling-point ID or --all"),
        (["--selling-point", "sp-missing"], "sp-missing"),
        (["--all", "--top", "0"], "--top"),
        (["--all", "--min-score", "1.5"], "--min-score"),
    ],
)
def test_cli_bad_input_is_one_line_and_exit_2(world: Settings, args: list[str], message: str) -> None:
    result = kdcvg_in(world, "retrieval", "propose-claims", *args)
    assert result.exit_code == 2 and message in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert relations(world) == {}


# ---- the demo ACKB's relations -----------------------------------------------------------------


def _demo_graph(products: list[str] | None, folder: Path) -> AckbGraph:
    """The demo's rows for `products` without rendering: empty files stand in for the clips' videos."""
    selected = demo.select_products(products)
    plans = demo.plan_clips(selected)
    nodes, rels = demo.build_rows(selected, plans, {plan.id: {} for plan in plans})
    for plan in plans:
        (folder / plan.video_path).parent.mkdir(parents=True, exist_ok=True)
        (folder / plan.video_path).touch()
    return AckbGraph(nodes, rels, folder)


def test_demo_relations_are_valid_once_per_pair_across_products_and_only_among_selected_products(tmp_path: Path) -> None:
    graph = _demo_graph(None, tmp_path)
    rows = graph.relationships["SAME_CLAIM"]
    owner = graph.product_of_selling_point
    assert len(rows) == len(SAME_CLAIMS) == len({(r["from"], r["to"]) for r in rows})
    assert {r["status"] for r in rows} == {"approved", "proposed", "rejected"}
    for row in rows:
        SameClaim.model_validate(row)  # from < to, not with itself, a known status and a score in [0, 1]
        assert owner[row["from"]] != owner[row["to"]]
    approved = {(r["from"], r["to"]) for r in rows if r["status"] == "approved"}
    assert ("sp-commuter-travel-mug-spill-proof", "sp-thermopeak-insulated-bottle-leak-proof") in approved
    pair = demo.select_products(["thermopeak-insulated-bottle", "commuter-travel-mug"])
    assert [(r["from"], r["to"], r["status"]) for r in demo.same_claim_rows(pair)] == [
        ("sp-commuter-travel-mug-ceramic-interior", "sp-thermopeak-insulated-bottle-bpa-free", "proposed"),
        ("sp-commuter-travel-mug-hot-12h", "sp-thermopeak-insulated-bottle-cold-24h", "rejected"),
        ("sp-commuter-travel-mug-spill-proof", "sp-thermopeak-insulated-bottle-leak-proof", "approved"),
    ]
    assert demo.same_claim_rows(demo.select_products(["thermopeak-insulated-bottle"])) == []


def test_demo_relations_leave_the_shipped_demo_backbone_matching(tmp_path: Path) -> None:
    """The shipped backbone is matched by the clips' ids and prompts: relations must not change them."""
    graph = _demo_graph(None, tmp_path)
    without = AckbGraph(graph.nodes, {**graph.relationships, "SAME_CLAIM": []}, tmp_path)
    card = read_card(SHIPPED_DIR)
    assert card is not None and card["config"]["max_clips"] is None
    assert training_content_hash(training_clips(graph)) == training_content_hash(training_clips(without)) == card["content_hash"]


def test_browse_lists_a_selling_points_relations_in_both_directions_best_first(alice: Curator, loaded: GraphStore) -> None:
    alice.relate_claims(SP_A, SP_B, score=0.4)  # stored SP_A -> SP_B
    alice.relate_claims("sp-0000000-0", SP_B, status="approved", score=0.9)  # stored sp-0000000-0 -> SP_B: seen from SP_B's side
    claims = browse.claims_for_selling_point(loaded, SP_B)
    assert [(c["from"], c["to"], c["other_id"], c["other_product"], c["status"]) for c in claims] == [
        ("sp-0000000-0", SP_B, "sp-0000000-0", "prod-0000000", "approved"),
        (SP_A, SP_B, SP_A, "prod-0000000", "proposed"),
    ]
    assert claims[1]["other_text"] == repo.selling_points.get(loaded, SP_A)["text"] and claims[1]["annotator"] == "alice"
    assert [c["other_id"] for c in browse.claims_for_selling_point(loaded, SP_B, status="proposed")] == [SP_A]
    assert [c["other_id"] for c in browse.claims_for_selling_point(loaded, SP_A)] == [SP_B]
    with pytest.raises(NotFoundError):
        browse.claims_for_selling_point(loaded, "sp-missing")
    with pytest.raises(BadInputError):
        browse.claims_for_selling_point(loaded, SP_A, status="maybe")
