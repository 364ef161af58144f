"""What every page shares: the one store of the server process, the settings and the signed-in user.

Ladybug allows one writer per database and two handles on one file in one process do not see each
other's writes, so the Streamlit server opens the store ONCE (`st.cache_resource`) and every
session uses it under a lock. Code that opens the store by itself (SAR's `load_sar`, MKR's
`generate`, the analysts' query worker) runs inside `SharedStore.released()`, which closes
the shared handle for that time and reopens it after. Neo4j's driver is thread-safe: no lock, and
`released()` closes nothing.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

import streamlit as st

from kb import migrate
from kb.store import GraphStore, QueryResult, open_store
from kdcvg.config import Settings, load_settings
from ui.auth import User


class SharedStore:
    """The server's single store handle, used by every session under one lock (Ladybug)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.RLock() if settings.store_backend == "ladybug" else None
        self._store: GraphStore | None = None
        self._open()

    def _open(self) -> GraphStore:
        """Open the store and refuse an un-migrated schema (closing it again then)."""
        store = open_store(self.settings)
        try:
            migrate.ensure_up_to_date(store)
        except BaseException:
            store.close()
            raise
        self._store = store
        return store

    def _guard(self) -> Any:
        """The lock serialising Ladybug use, or a no-op for Neo4j."""
        return self._lock if self._lock is not None else nullcontext()

    @contextmanager
    def use(self) -> Iterator[GraphStore]:
        """The store, for this session alone while the block runs (reopened if a release failed)."""
        with self._guard():
            yield self._store if self._store is not None else self._open()

    @contextmanager
    def released(self) -> Iterator[Settings]:
        """Let code that opens the store itself run (Ladybug: ours is closed meanwhile); yields the settings."""
        with self._guard():
            if self._lock is not None and self._store is not None:
                self._store.close()
                self._store = None
            try:
                yield self.settings
            finally:
                if self._lock is not None:
                    self._open()

    def read_only_query(self, text: str, params: dict[str, Any] | None, timeout_s: float) -> QueryResult:
        """Check an analyst's statement, then run it in the limited query worker (Ladybug: our handle released meanwhile)."""
        from kb.query_worker import run_analyst_query
        from kb.readonly import check_read_only

        check_read_only(text)  # a refused statement does not cost the other sessions a close and reopen
        with self.released() as settings:
            return run_analyst_query(settings, text, params, timeout_s)

    def close(self) -> None:
        """Close the handle (when the cache entry is released)."""
        with self._guard():
            if self._store is not None:
                self._store.close()
                self._store = None


@st.cache_resource(show_spinner=False, on_release=lambda shared: shared.close())
def _shared_store(settings_json: str) -> SharedStore:
    """The cached SharedStore for one settings value (JSON, so the cache can hash it)."""
    return SharedStore(Settings.model_validate_json(settings_json))


def shared_store(settings: Settings | None = None) -> SharedStore:
    """The process-wide SharedStore for these settings (default: the configured ones)."""
    settings = settings or load_settings()
    return _shared_store(settings.model_dump_json())


def release_shared_stores() -> None:
    """Close every shared store (tests, and before another process must open the database)."""
    _shared_store.clear()


def current_user() -> User:
    """The signed-in user (the app's entry script signs in before any page runs)."""
    user = st.session_state.get("user")
    if not isinstance(user, User):
        st.error("Please sign in.")
        st.stop()
    return user


def require(capability: str) -> User:
    """The signed-in user if a role grants `capability`; otherwise say so and stop the page."""
    user = current_user()
    if not user.can(capability):
        st.error(f"Your roles ({', '.join(user.roles)}) do not allow this page ({capability}).")
        st.stop()
    return user
