"""Eight annotators at once on a real Neo4j server, through kb.curation.Curator.

Neo4j runs transactions at read-committed isolation: a read-then-write is only atomic when the
write lock is taken first. Threads are released together by barriers, so each round two
annotators read the same version of the same record before either writes.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from kb import repository as repo
from kb.audit import list_audit
from kb.curation import Curator
from kb.neo4j_store import Neo4jStore
from kb.repository import StaleWriteError
from kb.store import ConflictError, GraphStore
from tests.conftest import reset_migrated_neo4j

ANNOTATORS = 8
PRODUCTS = [f"prod-{i}" for i in range(4)]  # two annotators per product each round
ROUNDS = 3


@pytest.fixture
def neo4j_store(neo4j_server_uri: tuple[str, str, str]) -> Iterator[GraphStore]:
    uri, user, password = neo4j_server_uri
    store = Neo4jStore(uri, user=user, password=password)
    reset_migrated_neo4j(store)
    yield store
    store.close()


def run_together(work: Callable[[int], None]) -> None:
    """Run work(0..7) on eight threads; re-raise the first unexpected error."""
    errors: list[BaseException] = []

    def guarded(k: int) -> None:
        try:
            work(k)
        except BaseException as exc:  # noqa: BLE001 - reported after the join
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(k,)) for k in range(ANNOTATORS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]


def test_racing_updates_lose_nothing_and_every_stale_save_is_refused_and_audited(neo4j_store: GraphStore, tmp_path: Path) -> None:
    setup = Curator(neo4j_store, "setup", tmp_path)
    for product in PRODUCTS:
        setup.create("Product", {"id": product, "name": "start"})
    read_done, write_done = threading.Barrier(ANNOTATORS), threading.Barrier(ANNOTATORS)
    saved: list[tuple[str, int, str]] = []  # (product, version written, name)
    refused: list[tuple[str, int, int]] = []  # (product, expected version, stored version then)
    lock = threading.Lock()

    def annotator(k: int) -> None:
        curator = Curator(neo4j_store, f"ann-{k}", tmp_path)
        for round_ in range(ROUNDS):
            product = PRODUCTS[(k + round_) % len(PRODUCTS)]
            version = repo.products.get(neo4j_store, product)["version"]
            read_done.wait()  # both annotators of this product hold the same version now
            name = f"ann-{k} round {round_}"
            try:
                after = curator.update("Product", product, {"name": name}, expected_version=version)
                with lock:
                    saved.append((product, after["version"], name))
            except StaleWriteError as exc:
                with lock:
                    refused.append((product, version, exc.current["version"]))
            write_done.wait()

    run_together(annotator)

    per_product = Counter(product for product, _, _ in saved)
    assert per_product == {product: ROUNDS for product in PRODUCTS}  # exactly one winner per product per round
    assert len(refused) == len(PRODUCTS) * ROUNDS
    assert all(stored == expected + 1 for _, expected, stored in refused)  # refused against the winner's newer version
    for product in PRODUCTS:
        stored = repo.products.get(neo4j_store, product)
        winners = sorted((version, name) for p, version, name in saved if p == product)
        assert [version for version, _ in winners] == [2, 3, 4]  # each version written once: no lost update
        assert stored["version"] == 1 + ROUNDS and stored["name"] == winners[-1][1]
        updates = list_audit(neo4j_store, entity_id=product, action="update", limit=100).events
        assert sorted((e.after["version"], e.after["name"]) for e in updates) == winners
        conflicts = list_audit(neo4j_store, entity_id=product, action="conflict", limit=100).events
        assert len(conflicts) == ROUNDS
        for event in conflicts:  # the newer stored value and the refused attempt both survive
            assert event.before["version"] == event.after["expected_version"] + 1
            assert event.before["name"] in {name for _, _, name in saved} and event.after["values"]["name"].startswith("ann-")


def test_racing_link_judgements_keep_one_winner_per_round(neo4j_store: GraphStore, tmp_path: Path) -> None:
    setup = Curator(neo4j_store, "setup", tmp_path)
    setup.create("SellingPoint", {"id": "sp-1", "text": "keeps cold"})
    setup.create("CreativeClip", {"id": "clip-1", "caption": "a bottle"})
    first = setup.link_clip("clip-1", "sp-1")
    start = threading.Barrier(ANNOTATORS)
    outcomes: list[str] = []

    def annotator(k: int) -> None:
        curator = Curator(neo4j_store, f"ann-{k}", tmp_path)
        start.wait()
        try:
            curator.set_link_status("clip-1", "sp-1", "approved" if k % 2 else "rejected", expected_updated_at=first["updated_at"])
            outcomes.append(f"ann-{k}")
        except StaleWriteError:
            outcomes.append("stale")

    run_together(annotator)
    winners = [o for o in outcomes if o != "stale"]
    assert len(winners) == 1 and outcomes.count("stale") == ANNOTATORS - 1
    stored = neo4j_store.read(lambda tx: repo.illustrates.get_in(tx, "clip-1", "sp-1"))
    assert stored["annotator"] == winners[0]
    assert len(list_audit(neo4j_store, entity_id="clip-1->sp-1", action="conflict", limit=100).events) == ANNOTATORS - 1


def test_racing_creates_of_one_id_and_one_link_leave_exactly_one(neo4j_store: GraphStore, tmp_path: Path) -> None:
    setup = Curator(neo4j_store, "setup", tmp_path)
    setup.create("SellingPoint", {"id": "sp-1", "text": "keeps cold"})
    setup.create("CreativeClip", {"id": "clip-1", "caption": "a bottle"})
    start = threading.Barrier(ANNOTATORS)
    outcomes: Counter[str] = Counter()
    lock = threading.Lock()

    def annotator(k: int) -> None:
        curator = Curator(neo4j_store, f"ann-{k}", tmp_path)
        start.wait()
        for action in (lambda: curator.create("Product", {"id": "prod-same", "name": f"by ann-{k}"}), lambda: curator.link_clip("clip-1", "sp-1")):
            try:
                action()
                outcome = "ok"
            except ConflictError:
                outcome = "conflict"
            with lock:
                outcomes[outcome] += 1
            start.wait()

    run_together(annotator)
    assert outcomes == {"ok": 2, "conflict": 2 * (ANNOTATORS - 1)}
    counts = neo4j_store.query(
        "MATCH (p:Product {id: 'prod-same'}) WITH count(p) AS products "
        "MATCH (:CreativeClip {id: 'clip-1'})-[r:ILLUSTRATES]->(:SellingPoint {id: 'sp-1'}) RETURN products, count(r) AS links"
    ).rows
    assert counts == [[1, 1]]
    assert len(list_audit(neo4j_store, entity_id="prod-same", action="create", limit=100).events) == 1
