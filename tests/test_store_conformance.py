"""The store behaviours every backend must share, run against each backend present (docs/decisions.md: store)."""

from __future__ import annotations

import pytest

from kb import repository as repo
from kb.repository import RecordValidationError
from kb.store import ConflictError, GraphStore, NotFoundError, StoreError


@pytest.fixture
def catalogue(store: GraphStore) -> GraphStore:
    """Two categories, three products, selling points, clips and motions, linked."""
    repo.categories.create(store, {"id": "cat-oral", "name": "Oral care"})
    repo.categories.create(store, {"id": "cat-audio", "name": "Audio"})
    for pid, name, cat in (("p-brush", "Sonic brush", "cat-oral"), ("p-floss", "Water flosser", "cat-oral"), ("p-buds", "Earbuds", "cat-audio")):
        repo.products.create(store, {"id": pid, "name": name, "brand": "Acme"})
        repo.in_category.link(store, pid, cat)
    repo.selling_points.create(store, {"id": "sp-soft", "text": "soft bristles"})
    repo.has_selling_point.link(store, "p-brush", "sp-soft")
    repo.motions.create(store, {"id": "m-zoom", "name": "zoom in"})
    for i in range(3):
        repo.clips.create(store, {"id": f"clip-{i}", "caption": f"close-up {i}", "tags": ["macro", f"t{i}"], "motion_divergence": 0.1 * i})
        repo.features.link(store, f"clip-{i}", "p-brush")
        repo.has_motion.link(store, f"clip-{i}", "m-zoom")
    repo.illustrates.link(store, "clip-0", "sp-soft", {"status": "approved", "score": 0.9, "annotator": "ann"})
    return store


def test_create_and_get_round_trip(store: GraphStore) -> None:
    created = repo.clips.create(store, {"id": "c1", "caption": "Slow zoom on the lid", "tags": ["lid", "zoom"], "motion_dx": -1.25, "width": 256})
    fetched = repo.clips.get(store, "c1")
    assert fetched == created
    assert fetched["version"] == 1 and fetched["created_at"] == fetched["updated_at"]
    assert fetched["tags"] == ["lid", "zoom"] and fetched["motion_dx"] == -1.25 and fetched["width"] == 256
    assert fetched["video_path"] is None


def test_create_refuses_a_taken_id_and_keeps_the_original(store: GraphStore) -> None:
    repo.products.create(store, {"id": "p1", "name": "Original"})
    with pytest.raises(ConflictError, match="already exists"):
        repo.products.create(store, {"id": "p1", "name": "Impostor"})
    assert repo.products.get(store, "p1")["name"] == "Original"
    assert repo.products.list(store).total == 1


@pytest.mark.parametrize(
    "record, field",
    [({"id": "", "name": "x"}, "id"), ({"id": "p", "name": "  "}, "name"), ({"id": "p"}, "name"), ({"id": "p", "name": "x", "colour": "red"}, "colour"),
     ({"id": "p", "name": "x", "version": 5}, "version"), ({"id": "p\n", "name": "x"}, "id")],
)  # fmt: skip
def test_create_validates_before_writing(store: GraphStore, record: dict, field: str) -> None:
    with pytest.raises(RecordValidationError, match=field):
        repo.products.create(store, record)
    assert repo.products.list(store).total == 0


def test_update_bumps_version_and_keeps_created_at(catalogue: GraphStore) -> None:
    before = repo.products.get(catalogue, "p-brush")
    after = repo.products.update(catalogue, "p-brush", {"name": "Sonic brush 2"}, expected_version=1)
    assert after["version"] == 2 and after["name"] == "Sonic brush 2" and after["brand"] == "Acme"
    assert after["created_at"] == before["created_at"] and after["updated_at"] >= before["updated_at"]
    assert repo.products.get(catalogue, "p-brush") == after


def test_two_writers_the_stale_one_is_refused_and_nothing_is_lost(catalogue: GraphStore) -> None:
    seen_by_alice = repo.products.get(catalogue, "p-brush")
    seen_by_bob = repo.products.get(catalogue, "p-brush")
    alice = repo.products.update(catalogue, "p-brush", {"description": "Alice's copy"}, expected_version=seen_by_alice["version"])
    with pytest.raises(ConflictError, match=r"changed by someone else \(stored version 2, yours 1\)"):
        repo.products.update(catalogue, "p-brush", {"name": "Bob's name"}, expected_version=seen_by_bob["version"])
    assert repo.products.get(catalogue, "p-brush") == alice  # Bob's stale write changed nothing
    bob = repo.products.update(catalogue, "p-brush", {"name": "Bob's name"}, expected_version=alice["version"])
    assert bob["description"] == "Alice's copy" and bob["name"] == "Bob's name" and bob["version"] == 3


def test_update_errors(catalogue: GraphStore) -> None:
    with pytest.raises(NotFoundError, match="no Product with id 'nope'"):
        repo.products.update(catalogue, "nope", {"name": "x"}, expected_version=1)
    with pytest.raises(RecordValidationError, match="version"):
        repo.products.update(catalogue, "p-brush", {"version": 9}, expected_version=1)
    with pytest.raises(RecordValidationError, match="name"):
        repo.products.update(catalogue, "p-brush", {"name": ""}, expected_version=1)
    assert repo.products.get(catalogue, "p-brush")["version"] == 1


def test_delete_detaches_and_respects_versions(catalogue: GraphStore) -> None:
    with pytest.raises(ConflictError):
        repo.clips.delete(catalogue, "clip-0", expected_version=7)
    repo.clips.delete(catalogue, "clip-0", expected_version=1)
    with pytest.raises(NotFoundError):
        repo.clips.get(catalogue, "clip-0")
    assert repo.clips.list(catalogue, related_to=("ILLUSTRATES", "sp-soft")).total == 0
    with pytest.raises(NotFoundError):
        repo.clips.delete(catalogue, "clip-0")


def test_list_filters_and_pages(catalogue: GraphStore) -> None:
    page = repo.products.list(catalogue, related_to=("IN_CATEGORY", "cat-oral"))
    assert [p["id"] for p in page.items] == ["p-brush", "p-floss"] and page.total == 2
    assert [p["id"] for p in repo.products.list(catalogue, skip=1, limit=1).items] == ["p-buds"]
    assert repo.products.list(catalogue, where={"name": "Earbuds"}).total == 1
    assert repo.clips.list(catalogue, related_to=("HAS_MOTION", "m-zoom")).total == 3
    assert repo.selling_points.list(catalogue, related_to=("ILLUSTRATES", "clip-0")).total == 1
    with pytest.raises(ValueError, match="limit"):
        repo.products.list(catalogue, limit=0)
    with pytest.raises(ValueError, match="no properties colour"):
        repo.products.list(catalogue, where={"colour": "red"})
    with pytest.raises(ValueError, match="does not connect"):
        repo.products.list(catalogue, related_to=("HAS_MOTION", "m-zoom"))


def test_neighbourhood_lists_both_directions(catalogue: GraphStore) -> None:
    hood = repo.selling_points.neighbourhood(catalogue, "sp-soft")
    links = {(r["type"], r["direction"], r["node"]["id"]) for r in hood["relationships"]}
    assert links == {("HAS_SELLING_POINT", "in", "p-brush"), ("ILLUSTRATES", "in", "clip-0")}
    illustrates = next(r for r in hood["relationships"] if r["type"] == "ILLUSTRATES")
    assert illustrates["properties"]["status"] == "approved" and illustrates["properties"]["annotator"] == "ann"


def test_link_is_one_per_pair_and_updates_properties(catalogue: GraphStore) -> None:
    repo.illustrates.link(catalogue, "clip-0", "sp-soft", {"status": "rejected", "annotator": "reviewer"})
    rows = catalogue.read(lambda tx: tx.run("MATCH (:CreativeClip {id: 'clip-0'})-[r:ILLUSTRATES]->(:SellingPoint) RETURN r.status AS s"))
    assert rows == [{"s": "rejected"}]
    with pytest.raises(RecordValidationError, match="status"):
        repo.illustrates.link(catalogue, "clip-1", "sp-soft", {"status": "maybe"})
    with pytest.raises(NotFoundError, match="no SellingPoint with id 'sp-nope'"):
        repo.illustrates.link(catalogue, "clip-1", "sp-nope", {"status": "proposed"})
    repo.illustrates.unlink(catalogue, "clip-0", "sp-soft")
    with pytest.raises(NotFoundError, match="not linked"):
        repo.illustrates.unlink(catalogue, "clip-0", "sp-soft")


def test_failed_transaction_leaves_nothing(store: GraphStore) -> None:
    def work(tx):  # noqa: ANN001, ANN202
        tx.run("CREATE (:Category {id: 'a', name: 'A', version: 1})")
        tx.run("CREATE (:Category {id: $id, name: $name, version: 1})", id="b", name="B")
        raise RuntimeError("simulated failure after two writes")

    with pytest.raises(RuntimeError, match="simulated"):
        store.write(work)
    assert repo.categories.list(store).total == 0


def test_statement_after_a_failed_statement_is_refused(store: GraphStore) -> None:
    repo.categories.create(store, {"id": "a", "name": "A"})

    def work(tx):  # noqa: ANN001, ANN202
        tx.run("CREATE (:Category {id: 'b', name: 'B', version: 1})")
        try:
            tx.run("MATCH (c:Category) RETURN c.id +")  # an invalid statement (a syntax error on both backends)
        except StoreError:
            pass  # a careless caller swallows the error...
        tx.run("CREATE (:Category {id: 'c', name: 'C', version: 1})")  # ...and carries on

    with pytest.raises(StoreError):
        store.write(work)
    assert [c["id"] for c in repo.categories.list(store).items] == ["a"]  # neither b nor c was committed


def test_ladybug_refuses_a_second_handle_on_an_open_file(store: GraphStore) -> None:
    """Two handles on one Ladybug file in one process don't see each other's writes: the second is refused."""
    if store.dialect != "ladybug":
        pytest.skip("a Ladybug-only rule: Neo4j sessions share one server")
    from kb.ladybug_store import LadybugStore

    repo.categories.create(store, {"id": "cat-1", "name": "Drinkware"})
    with pytest.raises(StoreError, match="already open in this process"):
        LadybugStore(store.path)
    with pytest.raises(StoreError, match="already open in this process"):
        LadybugStore(store.path, read_only=True)
    store.close()
    reopened = LadybugStore(store.path, read_only=True)  # closed: opening again is fine, and the write is there
    try:
        assert repo.categories.get(reopened, "cat-1")["name"] == "Drinkware"
    finally:
        reopened.close()
