"""Two annotators race on one record, on each backend, through the path the curation app takes.

Both writers are released by a barrier after reading the same version of the same record, then
both save against that version: exactly one save wins, the other gets a ConflictError
(StaleWriteError carrying the winner's record), and the audit trail keeps both.

How each backend serialises the writers differs, and each race is the real one:
- Ladybug allows one handle per file per process: the app's sessions share `ui.state.SharedStore`
  and each store call takes its lock (`per_call()`); the race is two threads on that shared handle.
  Between processes, the store's writer lock (kb/store_lock.py) decides: two processes released by
  a barrier both try to become the writer; one is refused and, retrying after the winner finished
  with the version it had read, gets the ConflictError.
- Neo4j serves many sessions: the race is two threads on the server, serialised by its node locks.
"""

from __future__ import annotations

import fcntl
import multiprocessing
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from kb import migrate, store_lock
from kb import repository as repo
from kb.audit import list_audit
from kb.backends import open_store
from kb.curation import Curator, StaleWriteError
from kb.ladybug_store import LadybugStore
from kb.store import ConflictError
from kdcvg.config import Settings, load_settings
from tests.conftest import reset_migrated_neo4j

ROUNDS = 4  # each round: a fresh pair of reads of one version, then two racing saves
WAIT_S = 120  # a guard against a hang (a broken barrier fails the test), not a speed claim


def _settings(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Settings:
    """Settings naming a private Ladybug data dir, or the session's Neo4j server."""
    environ = {"KDCVG_DATA": str(tmp_path / "data"), "KDCVG_BACKEND": backend}
    if backend == "neo4j":
        uri, user, password = request.getfixturevalue("neo4j_server_uri")
        environ |= {"NEO4J_URI": uri, "NEO4J_USER": user, "NEO4J_PASSWORD": password}
    return load_settings(environ=environ, config_file=tmp_path / "absent.toml")


@pytest.fixture
def shared(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Any]:
    """The app's shared store (ui.state.SharedStore) on a migrated, empty store of the backend."""
    from ui.state import SharedStore

    settings = _settings(backend, tmp_path, request)
    with open_store(settings) as store:
        if store.dialect == "neo4j":
            reset_migrated_neo4j(store)
        else:
            migrate.migrate(store)
    shared = SharedStore(settings)
    yield shared
    shared.close()


def race(work: Callable[[int, threading.Barrier], None]) -> None:
    """Run work(0) and work(1) on two threads; re-raise the first error either raised."""
    barrier = threading.Barrier(2, timeout=WAIT_S)
    errors: list[BaseException] = []

    def guarded(k: int) -> None:
        try:
            work(k, barrier)
        except BaseException as exc:  # noqa: BLE001 - re-raised after the join
            barrier.abort()  # the other thread must not wait for this one forever
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(k,)) for k in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]


def test_two_annotators_saving_one_version_exactly_one_wins(shared: Any, tmp_path: Path) -> None:
    store = shared.per_call()
    Curator(store, "setup").create("Product", {"id": "p-race", "name": "start"})
    outcomes: list[tuple[int, str, Any]] = []  # (round, "saved" | "refused", saved record | the refusal)
    lock = threading.Lock()

    def annotator(k: int, barrier: threading.Barrier) -> None:
        curator = Curator(store, f"ann-{k}")
        for round_ in range(ROUNDS):
            seen = repo.products.get(store, "p-race")
            barrier.wait()  # both hold the same version now
            try:
                saved = curator.update("Product", "p-race", {"name": f"ann-{k} r{round_}"}, expected_version=seen["version"])
                result: tuple[str, Any] = ("saved", saved)
            except ConflictError as exc:
                result = ("refused", exc)
            with lock:
                outcomes.append((round_, *result))
            barrier.wait()  # the round is over for both before anyone reads again

    race(annotator)

    winners: list[dict] = []
    for round_ in range(ROUNDS):
        this = [(kind, value) for r, kind, value in outcomes if r == round_]
        assert sorted(kind for kind, _ in this) == ["refused", "saved"], this
        saved = next(value for kind, value in this if kind == "saved")
        refusal = next(value for kind, value in this if kind == "refused")
        assert saved["version"] == round_ + 2
        assert isinstance(refusal, StaleWriteError) and refusal.current == saved  # refused against the winner's record
        winners.append(saved)
    stored = repo.products.get(store, "p-race")
    assert stored == winners[-1] and stored["version"] == ROUNDS + 1  # no save was lost or applied twice
    updates = list_audit(store, entity_id="p-race", action="update", limit=100).events
    assert sorted((e.after["version"], e.after["name"]) for e in updates) == [(w["version"], w["name"]) for w in winners]
    conflicts = list_audit(store, entity_id="p-race", action="conflict", limit=100).events
    assert sorted(e.after["expected_version"] for e in conflicts) == list(range(1, ROUNDS + 1))


def test_two_annotators_judging_one_link_exactly_one_wins(shared: Any) -> None:
    store = shared.per_call()
    setup = Curator(store, "setup")
    setup.create("SellingPoint", {"id": "sp-race", "text": "keeps cold"})
    setup.create("CreativeClip", {"id": "clip-race", "caption": "a bottle"})
    setup.link_clip("clip-race", "sp-race")
    outcomes: list[tuple[int, str]] = []
    lock = threading.Lock()

    def annotator(k: int, barrier: threading.Barrier) -> None:
        curator = Curator(store, f"ann-{k}")
        for round_ in range(ROUNDS):
            seen = store.read(lambda tx: repo.illustrates.get_in(tx, "clip-race", "sp-race"))
            barrier.wait()
            try:
                status = "approved" if k else "rejected"
                curator.set_link_status("clip-race", "sp-race", status, expected_updated_at=seen["updated_at"])
                outcome = f"ann-{k}"
            except ConflictError:
                outcome = "refused"
            with lock:
                outcomes.append((round_, outcome))
            barrier.wait()

    race(annotator)

    winners = []
    for round_ in range(ROUNDS):
        this = sorted(outcome for r, outcome in outcomes if r == round_)
        assert len(this) == 2 and this[1] == "refused" and this[0].startswith("ann-"), this
        winners.append(this[0])
    stored = store.read(lambda tx: repo.illustrates.get_in(tx, "clip-race", "sp-race"))
    assert stored["annotator"] == winners[-1] and stored["status"] == ("approved" if winners[-1] == "ann-1" else "rejected")
    assert len(list_audit(store, entity_id="clip-race->sp-race", action="set_status", limit=100).events) == ROUNDS
    assert len(list_audit(store, entity_id="clip-race->sp-race", action="conflict", limit=100).events) == ROUNDS


# ---------------------------------------------------------------------------------------------
# Ladybug across processes: the writer lock refuses the second process; its retry is stale.
# ---------------------------------------------------------------------------------------------


def _racing_process(settings: Settings, k: int, start: Any, done: Any, results: Any) -> None:
    """One `kdcvg`-like writer: take the writer lock, save version 1 of p-race, report; hold the lock until both reported."""
    try:
        start.wait()
        try:
            writer = store_lock.acquire(settings, f"racer {k}")
        except store_lock.StoreBusyError as exc:
            results.put((k, "busy", str(exc)))
            done.wait()
            return
        try:
            with LadybugStore(settings.ladybug_path) as store:
                saved = Curator(store, f"racer-{k}").update("Product", "p-race", {"name": f"racer {k}"}, expected_version=1)
            results.put((k, "saved", saved["name"]))
            done.wait()  # the other process has tried while this one held the lock
        finally:
            assert writer is not None
            writer.release()
    except BaseException as exc:  # noqa: BLE001 - reported to the test
        done.abort()
        results.put((k, "error", repr(exc)))


def test_two_processes_one_writes_the_other_is_refused_then_its_retry_is_stale(tmp_path: Path) -> None:
    settings = load_settings(environ={"KDCVG_DATA": str(tmp_path / "data")}, config_file=tmp_path / "absent.toml")
    with LadybugStore(settings.ladybug_path) as store:
        migrate.migrate(store)
        Curator(store, "setup").create("Product", {"id": "p-race", "name": "start"})
    context = multiprocessing.get_context("spawn")  # no fork of a process that holds threads and database handles
    start, done = context.Barrier(2, timeout=WAIT_S), context.Barrier(2, timeout=WAIT_S)
    results = context.Queue()
    processes = [context.Process(target=_racing_process, args=(settings, k, start, done, results)) for k in range(2)]
    for process in processes:
        process.start()
    reports = sorted((results.get(timeout=WAIT_S) for _ in processes), key=lambda r: r[1])
    for process in processes:
        process.join(timeout=WAIT_S)
    assert [process.exitcode for process in processes] == [0, 0], reports
    assert [kind for _, kind, _ in reports] == ["busy", "saved"], reports
    (loser, _, message), (winner, _, name) = reports
    assert f"racer {winner}" in message and "another kdcvg command is writing to this store" in message

    writer = store_lock.acquire(settings, f"racer {loser} retrying")  # the winner is gone: the lock is free
    try:
        with LadybugStore(settings.ladybug_path) as store:
            with pytest.raises(StaleWriteError, match=r"stored version 2, yours 1") as refused:
                Curator(store, f"racer-{loser}").update("Product", "p-race", {"name": f"racer {loser}"}, expected_version=1)
            assert refused.value.current["name"] == name == f"racer {winner}"
            assert repo.products.get(store, "p-race")["version"] == 2
            assert len(list_audit(store, entity_id="p-race", action="conflict", limit=10).events) == 1
    finally:
        assert writer is not None
        writer.release()


def test_a_writer_refused_between_the_holders_lock_and_its_line_still_names_the_holder(tmp_path: Path) -> None:
    """The holder takes the kernel lock first and writes `PID ROLE` just after: a writer refused in between waits for the line."""
    settings = load_settings(environ={"KDCVG_DATA": str(tmp_path / "data")}, config_file=tmp_path / "absent.toml")
    path = store_lock.lock_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    held = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)  # locked, no line yet: the holder is between its two steps
        late = threading.Timer(0.05, lambda: os.pwrite(held, b"4242 kdcvg kb import\n", 0))
        late.start()
        with pytest.raises(store_lock.StoreBusyError, match=r"pid 4242: kdcvg kb import"):
            store_lock.acquire(settings, "racer")
        late.join()
    finally:
        os.close(held)
