"""What every page shares: the one store of the server process, the settings and the signed-in user.

Ladybug allows one writer per database and two handles on one file in one process do not see each
other's writes, so the Streamlit server opens the store ONCE (a process-wide registry, not
`st.cache_resource`: Streamlit's "clear cache" message, which any browser can send, clears that
cache on the event loop's thread) and every session uses it under a lock. For its whole life the
server also holds the store's writer lock (kb/store_lock.py), so no other `kdcvg` writer can
slip in while the handle is handed over. Code that opens the store by itself (SAR's `load_sar`, MKR's
`generate`, the analysts' query worker) runs inside `SharedStore.released()`, which closes
the shared handle for that time and reopens it after. Neo4j's driver is thread-safe: no lock, and
`released()` closes nothing.
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from typing import Any, TypeVar

import streamlit as st

from kb import media_placement, migrate, store_lock
from kb.backends import open_store
from kb.migrate import MigrationError
from kb.store import GraphStore, QueryResult, StoreError, Transaction
from kdcvg.config import Settings, load_settings
from ui.auth import User
from ui.render import md_escape

LOG = logging.getLogger("kdcvg.ui")
T = TypeVar("T")


class SharedStore:
    """The server's single store handle, used by every session under one lock (Ladybug)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.RLock() if settings.store_backend == "ladybug" else None
        self._store: GraphStore | None = None
        self._writer = store_lock.adopt_inherited(settings) or store_lock.acquire(settings, store_lock.APP)
        try:
            store = self._open()
            media_placement.recover(store, settings.media_dir)  # finish or undo an import killed while placing media
        except BaseException:
            self._release_writer()
            raise

    def _release_writer(self) -> None:
        """Give up the writer lock (when the store is closed for good)."""
        if self._writer is not None:
            self._writer.release()
            self._writer = None

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

    def per_call(self) -> LockedStore:
        """A view of this store that takes the lock for each read or write only (slow work between calls runs unlocked)."""
        return LockedStore(self)

    def close(self) -> None:
        """Close the handle and give up the writer lock (tests, server shutdown)."""
        with self._guard():
            if self._store is not None:
                self._store.close()
                self._store = None
            self._release_writer()


class LockedStore:
    """The shared store for code that does slow work between its store calls.

    Each `read`/`write` takes the shared lock for that call alone, so other sessions are served while
    the caller computes (an upload's measurement, SAR's retrieval, a whole generation). Offers what
    the Curator, SAR's loading and provenance recording use of a GraphStore.
    """

    def __init__(self, shared: SharedStore) -> None:
        self.shared = shared
        self.dialect = shared.settings.store_backend  # which migrations apply
        self.read_only = False

    def read(self, work: Callable[[Transaction], T]) -> T:
        with self.shared.use() as store:
            return store.read(work)

    def write(self, work: Callable[[Transaction], T]) -> T:
        with self.shared.use() as store:
            return store.write(work)


_STORES: dict[str, SharedStore] = {}
_STORES_LOCK = threading.Lock()


def shared_store(settings: Settings | None = None) -> SharedStore:
    """The process-wide SharedStore for these settings (default: the configured ones), opened on first use."""
    settings = settings or load_settings()
    key = settings.model_dump_json()
    with _STORES_LOCK:
        shared = _STORES.get(key)
        if shared is None:
            store_lock.make_private(settings)  # `kdcvg ui` also sets the server's umask to 077
            shared = _STORES[key] = SharedStore(settings)
        return shared


def release_shared_stores() -> None:
    """Close every shared store and give up the writer locks (tests, and before another process must write)."""
    with _STORES_LOCK:
        while _STORES:
            _STORES.popitem()[1].close()


@contextmanager
def page_errors() -> Iterator[None]:
    """Run a page; a store error becomes one clear message, anything else a reference number (traceback in the log)."""
    try:
        yield
    except (StoreError, MigrationError, store_lock.StoreBusyError) as exc:
        LOG.warning("store error on a page: %s", exc)
        st.error(md_escape(f"The store refused this: {exc}"))
    except Exception:
        reference = secrets.token_hex(4)
        LOG.exception("page failed (reference %s)", reference)
        st.error(f"Something went wrong on this page (reference {reference}); it has been logged. Try again, or tell an administrator.")


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
