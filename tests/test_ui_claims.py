"""The review page's "Same claim" section with Streamlit's AppTest on a real sandbox store: judged, audited, conflicts kept."""

from __future__ import annotations

from kb import repository as repo
from kb.audit import list_audit
from kb.curation import Curator
from kdcvg.config import Settings
from tests import test_ui_pages
from tests.test_ui_pages import _pick_point, graph, on_page, rows, signed_in, texts

sandbox = test_ui_pages.sandbox  # the same private sandbox per test as the other pages' tests

BOTTLE, EARBUDS = "prod-thermopeak-insulated-bottle", "prod-airbeat-wireless-earbuds"


def points(settings: Settings, product: str) -> list[str]:
    """The selling point ids of a product, in id order."""
    found = rows(settings, "MATCH (:Product {id: $p})-[:HAS_SELLING_POINT]->(s:SellingPoint) RETURN s.id AS id ORDER BY id", p=product)
    return [r["id"] for r in found]


def propose(settings: Settings, a: str, b: str, score: float) -> dict:
    """A proposed SAME_CLAIM relation written as SAR writes it."""
    with graph(settings).use() as store:
        return Curator(store, "sar-model").relate_claims(a, b, score=score)


def stored(settings: Settings, a: str, b: str) -> dict | None:
    with graph(settings).use() as store:
        return store.read(lambda tx: repo.same_claim.get_in(tx, a, b))


def test_reviewer_approves_a_proposed_relation_and_it_is_written_and_audited(sandbox: Settings) -> None:
    bottle, earbuds = points(sandbox, BOTTLE)[0], points(sandbox, EARBUDS)[0]
    relation = propose(sandbox, earbuds, bottle, 0.8)
    a, b = relation["from"], relation["to"]
    at = on_page(signed_in("rev"), "views/review.py")
    _pick_point(at, "review", BOTTLE, bottle)
    assert earbuds in texts(at) and "Same claim" in [h.value for h in at.subheader]
    at.button(key=f"claim_{a}_{b}_approved").click().run()
    assert not at.exception and not at.error
    now = stored(sandbox, a, b)
    assert now is not None and (now["status"], now["annotator"], now["score"]) == ("approved", "rev", 0.8)
    with graph(sandbox).use() as store:
        events = list_audit(store, entity_id=f"{a}->{b}").events
    assert [(e.actor, e.action, e.entity_label, (e.after or {}).get("status")) for e in events] == [
        ("rev", "set_status", "SAME_CLAIM", "approved"),
        ("sar-model", "link", "SAME_CLAIM", "proposed"),
    ]
    assert f"claim_{a}_{b}_approved" not in {btn.key for btn in at.button}  # judged: listed, no longer offered
    assert "same claim: " in texts(at)


def test_a_judgement_made_meanwhile_by_someone_else_is_not_overwritten(sandbox: Settings) -> None:
    bottle, earbuds = points(sandbox, BOTTLE)[1], points(sandbox, EARBUDS)[1]
    relation = propose(sandbox, bottle, earbuds, 0.6)
    a, b = relation["from"], relation["to"]
    at = on_page(signed_in("rev"), "views/review.py")
    _pick_point(at, "review", EARBUDS, earbuds)
    with graph(sandbox).use() as store:  # ann touches it after rev's page showed it (still proposed, so still offered)
        theirs = Curator(store, "ann").set_claim_status(a, b, "proposed")
    at.button(key=f"claim_{a}_{b}_approved").click().run()
    assert any("Not saved" in w.value and "ann" in w.value for w in at.warning)
    assert stored(sandbox, a, b) == theirs
    with graph(sandbox).use() as store:
        conflict = list_audit(store, action="conflict").events[0]
    assert (conflict.actor, conflict.entity_label, conflict.entity_id) == ("rev", "SAME_CLAIM", f"{a}->{b}")
    assert conflict.before == theirs and conflict.after["values"] == {"status": "approved"}
    at.button(key=f"claim_{a}_{b}_rejected").click().run()  # judged again on what is stored now: saved
    assert stored(sandbox, a, b)["status"] == "rejected" and stored(sandbox, a, b)["annotator"] == "rev"
