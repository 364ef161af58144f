"""kb.curation on a real store and real video files: every write validated, audited, atomic."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from kb import repository as repo
from kb.audit import AuditEvent, count_audit, list_audit
from kb.curation import CLIP_DIR, CURATED_LABELS, Curator
from kb.demo.clips import render_clip
from kb.graph import graph_from_store
from kb.interchange import import_ackb
from kb.motion import measure_motion
from kb.records import MAX_TEXT
from kb.repository import RecordValidationError, StaleWriteError
from kb.schema import MOTION_DESCRIPTORS
from kb.store import ConflictError, GraphStore, NotFoundError
from retrieval.feedback import rejected_pairs
from retrieval.hetero import CLIP, SP
from tests.conftest import snapshot

CLIP_ID, SP_ID, OTHER_SP = "clip-0000000-000", "sp-0000000-0", "sp-0000000-1"

# label -> (a new record, a change to it)
SAMPLES: dict[str, tuple[dict, dict]] = {
    "Category": ({"id": "cat-new", "name": "Garden"}, {"description": "Tools & seeds"}),
    "Product": ({"id": "prod-new", "name": "Rake", "brand": "Acme"}, {"name": "Steel rake"}),
    "SellingPoint": ({"id": "sp-new", "text": "never rusts"}, {"text": "never rusts,\nten-year warranty"}),
    "CreativeClip": ({"id": "clip-new", "caption": "a rake on grass", "tags": ["garden"]}, {"caption": "a rake on wet grass"}),
    "Motion": ({"id": "motion-new", "name": "dolly"}, {"description": "camera moves forward"}),
}


@pytest.fixture
def loaded(store: GraphStore, small_ackb: Path, media_dir: Path) -> GraphStore:
    import_ackb(store, small_ackb, media_dir)
    return store


@pytest.fixture
def alice(loaded: GraphStore, media_dir: Path) -> Curator:
    return Curator(loaded, "alice", media_dir)


def events(store: GraphStore, **filters: str) -> list[AuditEvent]:
    return list_audit(store, limit=500, **filters).events


@pytest.fixture(scope="module")
def zoom_video(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = render_clip(tmp_path_factory.mktemp("upload") / "zoom.mp4", motion="zoom_in", seed=7, num_frames=12, scene="brick")
    return path.read_bytes()


@pytest.mark.parametrize("label", list(SAMPLES))
def test_create_update_delete_each_write_the_change_and_one_audit_row(alice: Curator, loaded: GraphStore, label: str) -> None:
    record, change = SAMPLES[label]
    repository = CURATED_LABELS[label]

    created = alice.create(label, record)
    assert repository.get(loaded, record["id"]) == created and created["version"] == 1
    [event] = events(loaded)
    assert (event.actor, event.action, event.entity_label, event.entity_id) == ("alice", "create", label, record["id"])
    assert event.before is None and event.after == created

    updated = alice.update(label, record["id"], change, expected_version=1)
    assert repository.get(loaded, record["id"]) == updated == {**created, **change, "updated_at": updated["updated_at"], "version": 2}
    assert count_audit(loaded) == 2
    latest = events(loaded)[0]
    assert (latest.action, latest.before, latest.after) == ("update", created, updated)

    alice.delete(label, record["id"], expected_version=2)
    with pytest.raises(NotFoundError):
        repository.get(loaded, record["id"])
    latest = events(loaded)[0]
    assert count_audit(loaded) == 3 and (latest.action, latest.before, latest.after) == ("delete", updated, None)


def test_create_with_links_commits_node_links_and_their_audit_rows_together(alice: Curator, loaded: GraphStore) -> None:
    alice.create("Product", {"id": "prod-new", "name": "Rake"}, related=[("IN_CATEGORY", "cat-0001")])
    assert [p["id"] for p in repo.products.list(loaded, related_to=("IN_CATEGORY", "cat-0001"), limit=100).items].count("prod-new") == 1
    assert [(e.action, e.entity_label, e.entity_id) for e in reversed(events(loaded))] == [
        ("create", "Product", "prod-new"),
        ("link", "IN_CATEGORY", "prod-new->cat-0001"),
    ]


def test_a_failing_write_leaves_store_media_and_audit_unchanged(alice: Curator, loaded: GraphStore, media_dir: Path, tmp_path: Path) -> None:
    before = snapshot(loaded, media_dir, tmp_path)
    with pytest.raises(NotFoundError, match="cat-missing"):  # the link fails after the node was created in the tx
        alice.create("Product", {"id": "prod-new", "name": "Rake"}, related=[("IN_CATEGORY", "cat-missing")])
    with pytest.raises(ConflictError, match="already exists"):
        alice.create("Product", {"id": "prod-0000000", "name": "Duplicate"})
    assert snapshot(loaded, media_dir, tmp_path) == before and count_audit(loaded) == 0


@pytest.mark.parametrize(
    "label, record, field, message",
    [
        ("CreativeClip", {"id": "clip-big", "caption": "x" * 10 * 1024 * 1024}, "caption", f"too long.*at most {MAX_TEXT:,}"),
        ("Product", {"id": "prod-blank", "name": "   "}, "name", "empty"),
        ("Product", {"id": "prod-nul", "name": "bad\x00name"}, "name", "control characters"),
        ("SellingPoint", {"id": "sp-bell", "text": "ring\x07ring"}, "text", "control characters"),
        ("Product", {"id": "prod-nameless"}, "name", "required"),
        ("Product", {"id": "prod-extra", "name": "A", "colour": "red"}, "colour", "not permitted"),
        ("CreativeClip", {"id": "clip-n", "caption": "c", "width": "256"}, "width", "integer"),
        ("Product", {"id": "x" * 201, "name": "A"}, "id", "at most 200"),
        ("GeneratedVideo", {"id": "gv-1"}, "label", "cannot be curated"),
    ],
)
def test_invalid_records_are_refused_naming_the_field_and_nothing_is_written(
    alice: Curator, loaded: GraphStore, media_dir: Path, tmp_path: Path, label: str, record: dict, field: str, message: str
) -> None:
    before = snapshot(loaded, media_dir, tmp_path)
    with pytest.raises(RecordValidationError, match=message) as caught:
        alice.create(label, record)
    assert caught.value.field == field and field in dict(caught.value.problems)  # a form shows the reason by the field
    assert snapshot(loaded, media_dir, tmp_path) == before and count_audit(loaded) == 0


def test_invalid_update_is_refused_and_nothing_is_written(alice: Curator, loaded: GraphStore, media_dir: Path, tmp_path: Path) -> None:
    before = snapshot(loaded, media_dir, tmp_path)
    for changes, field in (({"caption": "y" * (MAX_TEXT + 1)}, "caption"), ({"caption": ""}, "caption"), ({"version": 9}, "version")):
        with pytest.raises(RecordValidationError) as caught:
            alice.update("CreativeClip", CLIP_ID, changes, expected_version=1)
        assert caught.value.field == field
    with pytest.raises(NotFoundError, match="clip-missing"):
        alice.update("CreativeClip", "clip-missing", {"caption": "c"}, expected_version=1)
    assert snapshot(loaded, media_dir, tmp_path) == before and count_audit(loaded) == 0


def test_markup_is_stored_verbatim_as_inert_text(alice: Curator, loaded: GraphStore) -> None:
    caption = '<script>alert("x")</script> & <b>bold</b>\nsecond line'
    alice.update("CreativeClip", CLIP_ID, {"caption": caption}, expected_version=1)
    assert repo.clips.get(loaded, CLIP_ID)["caption"] == caption
    assert events(loaded)[0].after["caption"] == caption


def test_stale_update_raises_conflict_with_the_current_record_and_both_values_survive_in_audit(
    loaded: GraphStore, media_dir: Path
) -> None:
    alice, bob = Curator(loaded, "alice", media_dir), Curator(loaded, "bob", media_dir)
    seen = repo.products.get(loaded, "prod-0000001")
    winner = alice.update("Product", seen["id"], {"name": "Alice's name"}, expected_version=seen["version"])
    with pytest.raises(StaleWriteError) as caught:
        bob.update("Product", seen["id"], {"name": "Bob's name"}, expected_version=seen["version"])
    assert isinstance(caught.value, ConflictError) and caught.value.current == winner
    assert repo.products.get(loaded, seen["id"]) == winner
    conflict = events(loaded, action="conflict")[0]
    assert (conflict.actor, conflict.entity_id) == ("bob", seen["id"])
    assert conflict.before == winner and conflict.before["name"] == "Alice's name"
    assert conflict.after == {"attempted_action": "update", "expected_version": seen["version"], "values": {"name": "Bob's name"}}
    with pytest.raises(StaleWriteError):
        bob.delete("Product", seen["id"], expected_version=seen["version"])
    assert repo.products.get(loaded, seen["id"]) == winner
    assert [e.after["attempted_action"] for e in events(loaded, action="conflict")] == ["delete", "update"]


def test_link_status_change_is_attributed_audited_and_read_by_retrieval_feedback(alice: Curator, loaded: GraphStore, media_dir: Path) -> None:
    graph = graph_from_store(loaded)
    sp, clip = graph.index(SP)[SP_ID], graph.index(CLIP)[CLIP_ID]
    link = next(r for r in graph.relationships["ILLUSTRATES"] if (r["from"], r["to"]) == (CLIP_ID, SP_ID))
    for status in ("rejected", "approved"):
        row = alice.set_link_status(CLIP_ID, SP_ID, status)
        assert (row["status"], row["annotator"], row["score"]) == (status, "alice", link.get("score"))
        assert row["updated_at"] > link["updated_at"]
        judged = graph_from_store(loaded)
        assert CLIP_ID in judged.judgements(status)[SP_ID]
        assert ([clip, sp] in rejected_pairs(judged, {SP_ID}).T.tolist()) == (status == "rejected")  # what feedback learns from
    set_events = events(loaded, action="set_status")
    assert [(e.before["status"], e.after["status"]) for e in reversed(set_events)] == [(link["status"], "rejected"), ("rejected", "approved")]
    assert set_events[0].entity_id == f"{CLIP_ID}->{SP_ID}" and set_events[0].entity_label == "ILLUSTRATES"


def test_stale_link_judgement_is_refused_and_audited(loaded: GraphStore, media_dir: Path) -> None:
    alice, bob = Curator(loaded, "alice", media_dir), Curator(loaded, "bob", media_dir)
    seen = repo.illustrates.link(loaded, CLIP_ID, SP_ID, {"status": "proposed", "score": 0.5})
    winner = alice.set_link_status(CLIP_ID, SP_ID, "approved", expected_updated_at=seen["updated_at"])
    with pytest.raises(StaleWriteError, match="alice") as caught:
        bob.set_link_status(CLIP_ID, SP_ID, "rejected", expected_updated_at=seen["updated_at"])
    assert caught.value.current == winner
    conflict = events(loaded, action="conflict")[0]
    assert conflict.before == winner and conflict.after["values"] == {"status": "rejected"} and conflict.actor == "bob"
    with pytest.raises(RecordValidationError) as invalid:
        alice.set_link_status(CLIP_ID, SP_ID, "maybe")
    assert invalid.value.field == "status"


def test_link_and_unlink_a_clip(alice: Curator, loaded: GraphStore) -> None:
    row = alice.link_clip(CLIP_ID, OTHER_SP, score=0.25)
    assert (row["status"], row["annotator"], row["score"]) == ("proposed", "alice", 0.25)
    with pytest.raises(ConflictError, match="already illustrates"):
        alice.link_clip(CLIP_ID, OTHER_SP)
    alice.unlink_clip(CLIP_ID, OTHER_SP)
    assert repo.illustrates.prepare(CLIP_ID, OTHER_SP, {"status": "proposed"})  # still valid to link again
    assert loaded.read(lambda tx: repo.illustrates.get_in(tx, CLIP_ID, OTHER_SP)) is None
    assert [e.action for e in events(loaded)] == ["unlink", "link"]
    assert events(loaded)[0].before == row
    for call, error in ((lambda: alice.link_clip("clip-missing", SP_ID), NotFoundError), (lambda: alice.unlink_clip(CLIP_ID, "sp-missing"), NotFoundError)):
        with pytest.raises(error, match="missing"):
            call()
    assert count_audit(loaded) == 2


def test_set_tags_trims_and_dedupes_and_refuses_blank_tags(alice: Curator, loaded: GraphStore) -> None:
    clip = alice.set_tags(CLIP_ID, [" close-up ", "studio", "close-up"], expected_version=1)
    assert clip["tags"] == ["close-up", "studio"] == repo.clips.get(loaded, CLIP_ID)["tags"]
    assert events(loaded)[0].action == "set_tags" and events(loaded)[0].after["tags"] == ["close-up", "studio"]
    with pytest.raises(RecordValidationError) as caught:
        alice.set_tags(CLIP_ID, ["ok", "  "], expected_version=2)
    assert caught.value.field == "tags" and count_audit(loaded) == 1


def test_upload_stores_the_file_measures_motion_and_creates_the_clip(alice: Curator, loaded: GraphStore, media_dir: Path, zoom_video: bytes) -> None:
    clip = alice.upload_clip("My Zoom.MP4", zoom_video, {"id": "clip-up", "caption": "zoom on brick", "tags": ["zoom"]},
                             product_id="prod-0000000", motion_id="motion-zoom_in")
    stored = media_dir / CLIP_DIR / "clip-up.mp4"
    assert clip["video_path"] == f"{CLIP_DIR}/clip-up.mp4" and stored.read_bytes() == zoom_video
    measured = measure_motion(stored)
    assert {k: clip[k] for k in measured} == measured and clip["num_frames"] == 12
    assert clip["motion_divergence"] > 0  # a zoom in, measured from the pixels
    assert repo.clips.get(loaded, "clip-up") == clip
    assert [(e.action, e.entity_id) for e in reversed(events(loaded))] == [
        ("upload", "clip-up"), ("link", "clip-up->prod-0000000"), ("link", "clip-up->motion-zoom_in")]
    assert not list((media_dir / CLIP_DIR).glob(".upload-*"))


def _png_bytes() -> bytes:
    import cv2

    ok, encoded = cv2.imencode(".png", np.full((64, 64, 3), 128, dtype=np.uint8))
    assert ok
    return encoded.tobytes()


@pytest.mark.parametrize(
    "filename, payload, message",
    [
        ("notes.txt", lambda video: b"just text\n" * 50, "not a video file"),
        ("notes.mp4", lambda video: b"just text\n" * 50, "is not a video"),
        ("picture.mp4", lambda video: _png_bytes(), "is not a video"),
        ("truncated.mp4", lambda video: video[:300], "not a (readable|decodable) video"),
        ("empty.mp4", lambda video: b"", "empty"),
    ],
)
def test_upload_of_a_non_video_is_refused_and_leaves_nothing(
    alice: Curator, loaded: GraphStore, media_dir: Path, tmp_path: Path, zoom_video: bytes, filename: str, payload, message: str
) -> None:
    before = snapshot(loaded, media_dir, tmp_path)
    with pytest.raises(RecordValidationError, match=message) as caught:
        alice.upload_clip(filename, payload(zoom_video), {"id": "clip-up", "caption": "c"})
    assert caught.value.field == "file"
    assert snapshot(loaded, media_dir, tmp_path) == before and count_audit(loaded) == 0
    assert not any(p.is_file() for p in media_dir.rglob("*"))


def test_upload_whose_graph_write_fails_removes_the_file(alice: Curator, loaded: GraphStore, media_dir: Path, tmp_path: Path, zoom_video: bytes) -> None:
    before = snapshot(loaded, media_dir, tmp_path)
    with pytest.raises(NotFoundError, match="prod-missing"):
        alice.upload_clip("z.mp4", zoom_video, {"id": "clip-up", "caption": "c"}, product_id="prod-missing")
    with pytest.raises(ConflictError, match="already exists"):
        alice.upload_clip("z.mp4", zoom_video, {"id": CLIP_ID, "caption": "c"})
    with pytest.raises(RecordValidationError) as caught:
        alice.upload_clip("z.mp4", zoom_video, {"id": "clip-up", "caption": ""})
    assert caught.value.field == "caption"
    for unsafe in ("../../outside", "clips/x", ".hidden"):
        with pytest.raises(RecordValidationError, match="names its file") as caught:
            alice.upload_clip("z.mp4", zoom_video, {"id": unsafe, "caption": "c"})
        assert caught.value.field == "id"
    assert snapshot(loaded, media_dir, tmp_path) == before and count_audit(loaded) == 0
    assert not any(p.is_file() for p in media_dir.rglob("*"))


def test_upload_ignores_client_supplied_measurements(alice: Curator, zoom_video: bytes) -> None:
    clip = alice.upload_clip("z.mp4", zoom_video, {"caption": "c", "motion_divergence": -5.0, "video_path": "clips/../../etc"})
    assert clip["id"].startswith("clip-") and clip["video_path"] == f"{CLIP_DIR}/{clip['id']}.mp4"
    assert clip["motion_divergence"] > 0 and set(MOTION_DESCRIPTORS) <= {k for k, v in clip.items() if v is not None}


def test_actor_must_be_named(loaded: GraphStore, media_dir: Path) -> None:
    for actor in ("", "  ", "two\nlines"):
        with pytest.raises(RecordValidationError) as caught:
            Curator(loaded, actor, media_dir)
        assert caught.value.field == "actor"
