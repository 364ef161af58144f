"""Create/edit/delete forms for curated nodes, with errors next to their fields and stale-save conflicts.

How a stale save is handled (optimistic versions from the store): the editor remembers the version
the annotator loaded. Saving passes it as `expected_version`; if someone saved in between, the
Curator refuses (`StaleWriteError`, audited as a `conflict` with both values) and the editor shows
the newer stored values next to the annotator's, which stay in the form: nothing is lost. The
annotator then keeps theirs (saved over the newer version) or takes the stored ones.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import streamlit as st

from kb.curation import Curator
from kb.repository import RecordValidationError, StaleWriteError
from kb.store import ConflictError, NotFoundError, Row
from ui import state
from ui.render import md_escape


@dataclass(frozen=True)
class Field:
    """One editable property: `kind` is line (one line), text (several lines) or tags (comma-separated).

    A blank `required` field is sent as "" so the store's validation names it; a blank optional one as None.
    """

    name: str
    label: str
    kind: str = "line"
    required: bool = False


FIELDS: dict[str, tuple[Field, ...]] = {
    "Category": (Field("name", "Name", required=True), Field("description", "Description", "text")),
    "Product": (Field("name", "Name", required=True), Field("brand", "Brand"), Field("description", "Description", "text")),
    "SellingPoint": (Field("text", "Selling point", "text", required=True),),
    "CreativeClip": (Field("caption", "Caption", "text", required=True), Field("tags", "Tags (comma-separated)", "tags")),
    "Motion": (Field("name", "Name", required=True), Field("description", "Description", "text")),
}
ID_PREFIX = {"Category": "cat", "Product": "prod", "SellingPoint": "sp", "CreativeClip": "clip", "Motion": "motion"}


def write(action: Callable[[Curator], Any]) -> Any:
    """Run one Curator call as the signed-in user on the shared store (under its lock)."""
    user = state.current_user()
    shared = state.shared_store()
    with shared.use() as store:
        return action(Curator(store, user.username, shared.settings.media_dir))


def to_widget(field: Field, value: Any) -> str:
    """A stored value as the text a widget shows."""
    if field.kind == "tags":
        return ", ".join(value or [])
    return "" if value is None else str(value)


def from_widget(field: Field, text: str) -> Any:
    """A widget's text as the value to store (blank optional text: None; tags: a list)."""
    if field.kind == "tags":
        return [t.strip() for t in text.split(",") if t.strip()]
    return text if text.strip() or field.required else None


def _widget(field: Field, key: str) -> str:

    """The input widget for one field (text area for long text)."""
    if field.kind == "text":
        return st.text_area(field.label, key=key, height=100)
    return st.text_input(field.label, key=key)


def field_errors(exc: RecordValidationError) -> dict[str, str]:
    """Field name -> reason for each problem (problems not tied to a field under `_form`)."""
    errors: dict[str, str] = {}
    for name, reason in exc.problems or [(None, str(exc))]:
        errors.setdefault((name or "_form").split(".")[0], reason)
    return errors


def show_errors(slots: dict[str, Any], errors: dict[str, str]) -> None:
    """Each error in the slot under its field; the rest above the form's button."""
    for name, reason in errors.items():
        (slots.get(name) or slots["_form"]).error(md_escape(reason))


def create_form(label: str, key: str, related: Sequence[tuple[str, str]] = ()) -> Row | None:
    """A form creating one `label` node (id optional: generated), linked to `related`; the created node."""
    slots: dict[str, Any] = {}
    with st.form(f"{key}_form", clear_on_submit=False):
        ident = st.text_input("Id (optional: generated when blank)", key=f"{key}_id")
        slots["id"] = st.empty()
        values = {}
        for field in FIELDS[label]:
            values[field.name] = _widget(field, f"{key}_{field.name}")
            slots[field.name] = st.empty()
        slots["_form"] = st.empty()
        submitted = st.form_submit_button(f"Create {label}", type="primary")
    if not submitted:
        return None
    record = {"id": ident.strip() or f"{ID_PREFIX[label]}-{secrets.token_hex(5)}"}
    for field in FIELDS[label]:
        value = from_widget(field, values[field.name])
        if value is not None:
            record[field.name] = value
    try:
        created = write(lambda c: c.create(label, record, related=related))
    except RecordValidationError as exc:
        show_errors(slots, field_errors(exc))
        return None
    except (ConflictError, NotFoundError) as exc:
        slots["_form"].error(md_escape(exc))
        return None
    st.success(md_escape(f"created {label} {created['id']}"))
    return created


class NodeEditor:
    """The edit/delete form of one stored node, remembering the version the annotator loaded."""

    def __init__(self, label: str, record: Row, key: str) -> None:
        self.label, self.key = label, key
        self.fields = FIELDS[label]
        base = st.session_state.get(f"{key}_base")
        if base is None or base["id"] != record["id"]:  # a newly chosen record: load it into the widgets
            self.load(record)
        self.base: Row = st.session_state[f"{key}_base"]

    def load(self, record: Row) -> None:
        """Make `record` the loaded version and put its values in the (not yet drawn) widgets."""
        st.session_state[f"{self.key}_base"] = record
        st.session_state.pop(f"{self.key}_conflict", None)
        for field in self.fields:
            st.session_state[f"{self.key}_{field.name}"] = to_widget(field, record.get(field.name))

    def _changes(self, values: dict[str, str]) -> Row:
        """The fields whose widget value differs from the loaded version (blank and unset count as equal)."""
        changes = {}
        for field in self.fields:
            value = from_widget(field, values[field.name])
            stored = self.base.get(field.name)
            if value != stored and not (value in (None, []) and stored in (None, "", [])):
                changes[field.name] = value
        return changes

    def _save(self, changes: Row, expected_version: int) -> Row:
        """Write the changes as the signed-in user; tags alone go through set_tags."""
        if self.label == "CreativeClip" and set(changes) == {"tags"}:
            return write(lambda c: c.set_tags(self.base["id"], changes["tags"], expected_version=expected_version))
        return write(lambda c: c.update(self.label, self.base["id"], changes, expected_version=expected_version))

    def render(self) -> None:
        """The form, its outcome (saved, errors by field, or a conflict), and delete."""
        flash = st.session_state.pop(f"{self.key}_flash", None)
        if flash:
            st.success(md_escape(flash))
        st.caption(md_escape(f"{self.label} {self.base['id']} · version {self.base['version']} · updated {self.base['updated_at']}"))
        slots: dict[str, Any] = {}
        with st.form(f"{self.key}_form"):
            values = {}
            for field in self.fields:
                values[field.name] = _widget(field, f"{self.key}_{field.name}")
                slots[field.name] = st.empty()
            slots["_form"] = st.empty()
            submitted = st.form_submit_button("Save", type="primary")
        if submitted:
            self._submit(self._changes(values), self.base["version"], slots)
        self._conflict(slots)
        self._delete()

    def _submit(self, changes: Row, expected_version: int, slots: dict[str, Any]) -> None:
        """Save based on `expected_version`; record a conflict, show errors by field, or reload on success."""
        if not changes:
            slots["_form"].info("Nothing changed.")
            return
        try:
            saved = self._save(changes, expected_version)
        except StaleWriteError as exc:
            st.session_state[f"{self.key}_conflict"] = {"current": exc.current, "mine": changes}
        except RecordValidationError as exc:
            show_errors(slots, field_errors(exc))
        except (ConflictError, NotFoundError) as exc:
            slots["_form"].error(md_escape(exc))
        else:
            self._reload(saved, f"saved {self.label} {saved['id']} (version {saved['version']})")

    def _reload(self, record: Row, message: str) -> None:
        """Load `record` into the form and rerun, showing `message` once."""
        self.load(record)
        st.session_state[f"{self.key}_flash"] = message
        st.rerun()

    def _conflict(self, slots: dict[str, Any]) -> None:
        """After a stale save: the stored values next to the annotator's, and the two ways on."""
        conflict = st.session_state.get(f"{self.key}_conflict")
        if conflict is None:
            return
        current, mine = conflict["current"], conflict["mine"]
        st.warning(
            md_escape(
                f"Someone saved this {self.label} after you opened it (now version {current['version']}, "
                f"updated {current['updated_at']}). Your values are still in the form; both are in the audit trail."
            )
        )
        st.dataframe(
            [{"field": name, "stored now": to_widget(_field(self.fields, name), current.get(name)), "yours": to_widget(_field(self.fields, name), value)}
             for name, value in mine.items()],
            width="stretch",
            hide_index=True,
            key=f"{self.key}_conflict_table",
        )
        keep, take = st.columns(2)
        if keep.button("Keep mine (save over the newer version)", key=f"{self.key}_keep_mine"):
            st.session_state.pop(f"{self.key}_conflict", None)
            st.session_state[f"{self.key}_base"] = current
            self._submit(mine, current["version"], slots)
        if take.button("Take the stored values", key=f"{self.key}_take_theirs"):
            self._reload(current, f"loaded version {current['version']} of {self.label} {current['id']}")

    def _delete(self) -> None:
        """Delete behind a confirmation, refused if the record changed since it was loaded."""
        with st.expander(f"Delete this {self.label}"):
            sure = st.checkbox("Yes, delete it and its relationships", key=f"{self.key}_delete_sure")
            if st.button("Delete", key=f"{self.key}_delete", disabled=not sure):
                try:
                    write(lambda c: c.delete(self.label, self.base["id"], expected_version=self.base["version"]))
                except StaleWriteError as exc:
                    st.error(md_escape(f"Not deleted: someone changed it since you opened it (now version {exc.current['version']})."))
                except (ConflictError, NotFoundError) as exc:
                    st.error(md_escape(exc))
                else:
                    st.session_state.pop(f"{self.key}_base", None)
                    st.session_state[f"{self.key}_deleted"] = self.base["id"]
                    st.rerun()


def link_state_key(link: Row) -> str:
    """The session-state key prefix of one ILLUSTRATES link (the pages that judge links share it)."""
    return f"link_{link['clip_id']}_{link['selling_point_id']}"


def judge(link: Row, status: str, seen: str | None, key: str) -> bool:
    """Set a link's status if nobody changed it since this session saw it (`seen` updated_at); reruns when saved."""
    return save_judgement(lambda c: c.set_link_status(link["clip_id"], link["selling_point_id"], status, expected_updated_at=seen), key)


def save_judgement(action: Callable[[Curator], Row], key: str) -> bool:
    """Run a status change (ILLUSTRATES or SAME_CLAIM) made with `expected_updated_at`; a stale one shows the stored status."""
    try:
        saved = write(action)
    except StaleWriteError as exc:
        st.session_state[f"{key}_seen"] = exc.current["updated_at"]
        st.warning(md_escape(f"Not saved: {exc}. Shown now: {exc.current['status']}; choose again."))
        return False
    except (RecordValidationError, NotFoundError) as exc:
        st.error(md_escape(exc))
        return False
    st.session_state[f"{key}_seen"] = saved["updated_at"]
    st.rerun()
    return True


def _field(fields: tuple[Field, ...], name: str) -> Field:

    """The Field called `name` (a plain one if the label has none)."""
    return next((f for f in fields if f.name == name), Field(name, name))
