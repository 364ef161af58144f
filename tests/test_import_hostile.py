"""Hostile ACKB directories: symlinks out of the directory, special files, fake videos, repeated JSON keys,
invisible characters in ids, files taken over, giant lines and floods of bad lines.

Each was accepted once (exit 0, /etc/shadow copied into the store's media folder, the importer's
environment stored as a "clip", rows silently dropped); each is now refused at its place, with
nothing written. The cases reuse the canary setup of tests/test_import_bad_input.py.
"""

from __future__ import annotations

import os
import stat
import tracemalloc
from pathlib import Path

import pytest

from kb import interchange
from kb.interchange import MAX_LINE_BYTES, MAX_PROBLEMS, ImportValidationError, import_ackb
from kb.schema import NODE_TYPES
from kb.store import GraphStore
from tests.conftest import snapshot
from tests.test_import_bad_input import (  # noqa: F401 - `loaded` is a fixture
    CANARY_MEDIA,
    CAT,
    CLIP,
    MANIFEST,
    PROD,
    SP,
    STAMP,
    Bad,
    _dump,
    check_refused,
    edit_manifest,
    edit_row,
    get_lines,
    insert_row,
    loaded,
    media_files,
    put_lines,
    reseal,
    set_line,
)
from tests.videos import write_video

CANARY_LINE = 25  # the canary clip's line in CreativeClip.jsonl

HOSTILE: list[Bad] = []


def hostile(case_id: str, *expect: str, count: int | None = None):  # noqa: ANN201 - a decorator
    def register(mutate):  # noqa: ANN001, ANN202
        HOSTILE.append(Bad(case_id, mutate, expect, count))
        return mutate

    return register


def _outside(d: Path, name: str) -> Path:
    """A directory next to the import (outside it) holding a valid video `clips/canary.mp4`."""
    outside = d.parent / name
    write_video(outside / "clips" / "canary.mp4", shade=90)
    return outside


# --- symlinks and special files ----------------------------------------------------------------
@hostile("clip-symlink-to-etc-shadow", f"{CLIP}:{CANARY_LINE}:video_path: media/{CANARY_MEDIA} is a symbolic link, refused")
def _clip_to_shadow(d: Path) -> None:
    (d / "media" / CANARY_MEDIA).unlink()
    (d / "media" / CANARY_MEDIA).symlink_to("/etc/shadow")


@hostile("clip-symlink-to-proc-environ", f"{CLIP}:{CANARY_LINE}:video_path: media/{CANARY_MEDIA} is a symbolic link, refused")
def _clip_to_environ(d: Path) -> None:
    (d / "media" / CANARY_MEDIA).unlink()
    (d / "media" / CANARY_MEDIA).symlink_to("/proc/self/environ")


@hostile("clip-symlink-to-a-valid-video-outside", f"{CLIP}:{CANARY_LINE}:video_path: media/{CANARY_MEDIA} is a symbolic link, refused")
def _clip_to_outside_video(d: Path) -> None:
    outside = _outside(d, "elsewhere")
    (d / "media" / CANARY_MEDIA).unlink()
    (d / "media" / CANARY_MEDIA).symlink_to(outside / "clips" / "canary.mp4")


@hostile("clips-dir-symlink-out", f"{CLIP}:{CANARY_LINE}:video_path: media/{CANARY_MEDIA} goes through media/clips, a symbolic link; refused")
def _clips_dir_out(d: Path) -> None:
    outside = _outside(d, "elsewhere")
    (d / "media" / CANARY_MEDIA).unlink()
    (d / "media" / "clips").rmdir()
    (d / "media" / "clips").symlink_to(outside / "clips")


@hostile("clips-dir-symlink-to-etc", f"{CLIP}:{CANARY_LINE}:video_path: media/clips/passwd goes through media/clips, a symbolic link; refused")
def _clips_dir_to_etc(d: Path) -> None:
    edit_row(d, CLIP, CANARY_LINE, video_path="clips/passwd")
    (d / "media" / CANARY_MEDIA).unlink()
    (d / "media" / "clips").rmdir()
    (d / "media" / "clips").symlink_to("/etc")


@hostile("media-dir-symlink-out", f"{CLIP}:{CANARY_LINE}:video_path: media/{CANARY_MEDIA} goes through media, a symbolic link; refused")
def _media_dir_out(d: Path) -> None:
    outside = _outside(d, "elsewhere")
    (d / "media" / CANARY_MEDIA).unlink()
    (d / "media" / "clips").rmdir()
    (d / "media").rmdir()
    (d / "media").symlink_to(outside)


@hostile("clip-is-a-fifo", f"{CLIP}:{CANARY_LINE}:video_path: media/{CANARY_MEDIA} is not a regular file (a device, fifo or socket), refused")
def _clip_fifo(d: Path) -> None:
    (d / "media" / CANARY_MEDIA).unlink()
    os.mkfifo(d / "media" / CANARY_MEDIA)


@hostile("clip-is-a-device", f"{CLIP}:{CANARY_LINE}:video_path: media/clips/zero.mp4 is a symbolic link, refused")
def _clip_device(d: Path) -> None:
    edit_row(d, CLIP, CANARY_LINE, video_path="clips/zero.mp4")
    (d / "media" / "clips" / "zero.mp4").symlink_to("/dev/zero")


@hostile("data-file-symlink-out", f"{MANIFEST}:nodes.Category: file '{CAT}' is a symbolic link, refused")
def _data_file_out(d: Path) -> None:
    outside = d.parent / "rows.jsonl"
    outside.write_bytes((d / CAT).read_bytes())  # valid rows: refused for where they are
    (d / CAT).unlink()
    (d / CAT).symlink_to(outside)


@hostile("data-dir-symlink-out", f"{MANIFEST}:nodes.Category: file '{CAT}' goes through nodes, a symbolic link; refused", count=len(NODE_TYPES))  # one per node file
def _data_dir_out(d: Path) -> None:
    (d.parent / "nodes-elsewhere").mkdir()
    os.replace(d / "nodes", d.parent / "nodes-elsewhere" / "nodes")
    (d / "nodes").symlink_to(d.parent / "nodes-elsewhere" / "nodes")


@hostile("manifest-symlink", f"{MANIFEST}: is a symbolic link, refused")
def _manifest_link(d: Path) -> None:
    os.replace(d / MANIFEST, d.parent / "real-manifest.json")
    (d / MANIFEST).symlink_to(d.parent / "real-manifest.json")


# --- media that are no (acceptable) video ----------------------------------------------------------
@hostile("html-named-mp4", f"{CLIP}:{CANARY_LINE}:video_path: media/{CANARY_MEDIA} is not a video: its bytes are no MP4/MOV")
def _html(d: Path) -> None:
    (d / "media" / CANARY_MEDIA).write_bytes(b"<html><body><script>fetch('/steal')</script></body></html>")


@hostile("mp4-with-broken-frames", f"{CLIP}:{CANARY_LINE}:video_path: media/{CANARY_MEDIA} is not a decodable video")
def _broken_frames(d: Path) -> None:
    path = d / "media" / CANARY_MEDIA
    data = bytearray(path.read_bytes())
    mdat = data.index(b"mdat") + 4
    data[mdat:] = bytes(len(data) - mdat)
    path.write_bytes(bytes(data))


@hostile("video-not-named-as-video", f"{CLIP}:{CANARY_LINE}:video_path: media/clips/canary.txt is not named as a video")
def _txt(d: Path) -> None:
    os.replace(d / "media" / CANARY_MEDIA, d / "media" / "clips" / "canary.txt")
    edit_row(d, CLIP, CANARY_LINE, video_path="clips/canary.txt")


@hostile("two-clips-one-file", f"{CLIP}:{CANARY_LINE}:video_path: media/{CANARY_MEDIA} is already the video of clip 'clip-0000000-000'")
def _two_clips(d: Path) -> None:
    edit_row(d, CLIP, 1, video_path=CANARY_MEDIA)


# --- repeated JSON keys ------------------------------------------------------------------------
@hostile("manifest-repeated-nodes-key", f"{MANIFEST}: not valid JSON: duplicate key 'nodes'")
def _manifest_dup(d: Path) -> None:
    text = (d / MANIFEST).read_text()
    (d / MANIFEST).write_text(text.rstrip().rstrip("}") + ', "nodes": {}}\n')


@hostile("row-repeated-key", f"{CAT}:2: malformed JSON: duplicate key 'name'")
def _row_dup(d: Path) -> None:
    set_line(d, CAT, 2, b'{"id":"cat-0001","name":"Category 1","name":"Other"}')


# --- ids and text ----------------------------------------------------------------------------------
for _name, _char in [
    ("RLO", "\u202e"), ("LRE", "\u202a"), ("LRI", "\u2066"), ("PDI", "\u2069"), ("LRM", "\u200e"), ("RLM", "\u200f"),
    ("ZWSP", "\u200b"), ("ZWNJ", "\u200c"), ("ZWJ", "\u200d"), ("BOM", "\ufeff"), ("WJ", "\u2060"),
    ("hangul-filler", "\u3164"), ("variation-selector", "\ufe0f"), ("space", " "), ("slash", "/"), ("emoji", "😀"),
]:  # fmt: skip
    HOSTILE.append(
        Bad(
            f"id-with-{_name}",
            lambda d, c=_char: insert_row(d, PROD, 3, {"id": f"prod-new{c}x", "name": "x"}),
            (f"{PROD}:3:id: Value error, character {ascii(_char)} at position 9 is not allowed",),
        )
    )
HOSTILE.append(
    Bad(
        "relationship-end-with-bidi",
        lambda d: edit_row(d, "relationships/IN_CATEGORY.jsonl", 2, to="cat-0001\u202e"),
        ("relationships/IN_CATEGORY.jsonl:2:to: Value error, character '\\u202e' at position 9 is not allowed",),
    )
)
HOSTILE.append(
    Bad("id-starting-with-dash", lambda d: insert_row(d, PROD, 3, {"id": "-prod", "name": "x"}), (f"{PROD}:3:id: Value error, character '-' at position 1",))
)
HOSTILE.append(Bad("text-with-NUL", lambda d: edit_row(d, SP, 4, text="fast\x00charge"), (f"{SP}:4:text: Value error, must not contain control characters other than tab",)))
HOSTILE.append(Bad("text-with-ESC", lambda d: edit_row(d, SP, 4, text="\x1b[31mred"), (f"{SP}:4:text: Value error, must not contain control characters other than tab",)))
HOSTILE.append(
    Bad("caption-with-NUL", lambda d: edit_row(d, CLIP, 3, caption="a\x00b"), (f"{CLIP}:3:caption: Value error, must not contain control characters other than tab",))
)


# --- sizes -----------------------------------------------------------------------------------------
@hostile("line-over-1MiB", f"{CLIP}:10: line longer than {MAX_LINE_BYTES:,} bytes")
def _long_line(d: Path) -> None:
    edit_row(d, CLIP, 10, caption="a" * (MAX_LINE_BYTES + 10))


@hostile("line-over-1MiB-without-final-newline", f"{CAT}:4: line longer than {MAX_LINE_BYTES:,} bytes")
def _long_last_line(d: Path) -> None:
    put_lines(d, CAT, [*get_lines(d, CAT)[:-1], b"x" * (3 * MAX_LINE_BYTES)], final_newline=False)


@pytest.mark.parametrize("bad", HOSTILE, ids=[c.id for c in HOSTILE])
def test_hostile_input_is_refused_and_nothing_is_written(bad: Bad, loaded: GraphStore, media_dir: Path, editable_ackb: Path, tmp_path: Path) -> None:
    check_refused(bad, loaded, media_dir, editable_ackb, tmp_path)
    assert not (media_dir / "clips" / "passwd").exists() and not (media_dir / "clips" / "zero.mp4").exists()


def test_unicode_letters_and_marks_stay_allowed_in_ids(store: GraphStore, media_dir: Path, editable_ackb: Path) -> None:
    d = editable_ackb
    ids = ["類別-音響", "कैमरा-१०", "café_crème.v2", "über:cat@home+1"]
    put_lines(d, CAT, [*get_lines(d, CAT), *(_dump({"id": i, "name": i, "created_at": STAMP, "updated_at": STAMP, "version": 1}) for i in ids)])
    report = import_ackb(store, d, media_dir)
    assert report.created["Category"] == 3 + len(ids)


# --- taking over files in the store -------------------------------------------------------------------
def _with_clip(d: Path, line: int, path: str, shade: int) -> None:
    edit_row(d, CLIP, line, video_path=path)
    write_video(d / "media" / path, shade=shade)


def test_a_new_clip_may_not_take_over_another_clips_file(store: GraphStore, media_dir: Path, editable_ackb: Path, tmp_path: Path) -> None:
    d = editable_ackb
    _with_clip(d, 1, "clips/owned.mp4", shade=10)
    import_ackb(store, d, media_dir)
    owned = (media_dir / "clips" / "owned.mp4").read_bytes()
    put_lines(d, CLIP, get_lines(d, CLIP)[1:])  # the owner is only in the store now
    edit_row(d, CLIP, 1, video_path="clips/owned.mp4")  # another clip claims the file, with other bytes
    write_video(d / "media" / "clips" / "owned.mp4", shade=240)
    before = snapshot(store, media_dir, tmp_path)
    with pytest.raises(ImportValidationError) as caught:
        import_ackb(store, d, media_dir)
    assert caught.value.problems == [f"{CLIP}:1:video_path: media/clips/owned.mp4 is already the video of clip 'clip-0000000-000'; each clip or generated video needs a file of its own"]
    assert (media_dir / "clips" / "owned.mp4").read_bytes() == owned
    assert snapshot(store, media_dir, tmp_path) == before


def test_a_new_clip_may_not_overwrite_a_different_file_nobody_owns(store: GraphStore, media_dir: Path, editable_ackb: Path) -> None:
    stray = write_video(media_dir / "clips" / "stray.mp4", shade=20)
    kept = stray.read_bytes()
    _with_clip(editable_ackb, 3, "clips/stray.mp4", shade=220)
    with pytest.raises(ImportValidationError) as caught:
        import_ackb(store, editable_ackb, media_dir)
    assert caught.value.problems == [
        f"{CLIP}:3:video_path: media/clips/stray.mp4: the store's media folder already holds a different file there, not this record's; refused"
    ]
    assert stray.read_bytes() == kept


def test_a_clip_may_replace_its_own_file_and_files_are_private(store: GraphStore, media_dir: Path, editable_ackb: Path) -> None:
    d = editable_ackb
    _with_clip(d, 4, "clips/mine.mp4", shade=30)
    assert import_ackb(store, d, media_dir).media_copied == 1
    write_video(d / "media" / "clips" / "mine.mp4", shade=160)  # the same clip, a new cut
    report = import_ackb(store, d, media_dir)
    assert report.media_copied == 1
    assert (media_dir / "clips" / "mine.mp4").read_bytes() == (d / "media" / "clips" / "mine.mp4").read_bytes()
    assert stat.S_IMODE((media_dir / "clips" / "mine.mp4").stat().st_mode) & 0o037 == 0  # 0640 at most
    assert stat.S_IMODE((media_dir / "clips").stat().st_mode) & 0o027 == 0  # 0750 at most
    assert sorted(p.name for p in media_dir.rglob("*")) == ["clips", "mine.mp4"]  # no partial, no journal left


# --- giant lines and floods of problems -------------------------------------------------------------
def test_a_giant_line_is_refused_without_being_held_in_memory(store: GraphStore, media_dir: Path, editable_ackb: Path) -> None:
    d = editable_ackb
    giant = 64 * MAX_LINE_BYTES
    with (d / CAT).open("ab") as handle:
        handle.write(b'{"id":"cat-big","name":"' + b"n" * giant + b'"}\n')
    reseal(d, CAT)
    tracemalloc.start()
    try:
        with pytest.raises(ImportValidationError) as caught:
            import_ackb(store, d, media_dir)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert caught.value.problems == [f"{CAT}:4: line longer than {MAX_LINE_BYTES:,} bytes"]
    assert peak < 8 * MAX_LINE_BYTES, f"peak Python memory {peak:,} bytes for a {giant:,}-byte line"


def test_a_flood_of_bad_lines_is_counted_in_full(store: GraphStore, media_dir: Path, editable_ackb: Path) -> None:
    d = editable_ackb
    bad_lines = 25_000
    put_lines(d, SP, [*get_lines(d, SP), *([b"{not json"] * bad_lines)])
    with pytest.raises(ImportValidationError) as caught:
        import_ackb(store, d, media_dir)
    assert len(caught.value.problems) == MAX_PROBLEMS and caught.value.total == bad_lines
    assert str(caught.value).startswith(
        f"{bad_lines} problem(s) found, nothing was written; {MAX_PROBLEMS} problems kept, {bad_lines - MAX_PROBLEMS} more not listed:"
    )


def test_rows_per_file_and_per_import_are_capped(store: GraphStore, media_dir: Path, editable_ackb: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(interchange, "MAX_ROWS_PER_FILE", 20)  # small caps, so the test stays small
    with pytest.raises(ImportValidationError) as caught:
        import_ackb(store, editable_ackb, media_dir)
    assert f"{SP}:21: more than 20 rows in one file; split the import" in caught.value.problems
    monkeypatch.setattr(interchange, "MAX_ROWS_PER_FILE", 1000)
    monkeypatch.setattr(interchange, "MAX_ROWS_TOTAL", 40)
    with pytest.raises(ImportValidationError) as caught:
        import_ackb(store, editable_ackb, media_dir)
    assert f"{SP}:32: more than 40 rows in the import; split the import" not in caught.value.problems  # counted across files
    assert any(p.endswith("more than 40 rows in the import; split the import") for p in caught.value.problems)
    assert media_files(media_dir) == {}
