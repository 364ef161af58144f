"""Shared fixtures: a real store for every backend that is present, and small ACKB directories.

Ladybug always runs. Neo4j runs when NEO4J_URI is set (the test database is wiped!) or when a
Docker engine answers (testcontainers starts neo4j:5); otherwise its tests are skipped with the
reason, which `-ra` prints in the summary.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from kb import migrate
from kb.interchange import export_ackb
from kb.ladybug_store import LadybugStore
from kb.store import GraphStore
from kb.synthetic import synthetic_ackb


def _docker_answers() -> bool:
    try:
        import docker

        docker.from_env(timeout=3).ping()
        return True
    except Exception:
        return False


@pytest.fixture(scope="session")
def neo4j_server() -> Iterator[tuple[str, str, str]]:
    """(uri, user, password) of a Neo4j 5 server, or skip with the reason."""
    if os.environ.get("NEO4J_URI"):
        yield os.environ["NEO4J_URI"], os.environ.get("NEO4J_USER", "neo4j"), os.environ.get("NEO4J_PASSWORD", "")
        return
    if not _docker_answers():
        pytest.skip("Neo4j backend not tested: NEO4J_URI is not set and no Docker engine answers for testcontainers")
    from testcontainers.neo4j import Neo4jContainer

    with Neo4jContainer("neo4j:5") as container:
        yield container.get_connection_url(), "neo4j", container.password


def _wipe_neo4j(store: GraphStore) -> None:
    store.run("MATCH (n) DETACH DELETE n")


@pytest.fixture(params=["ladybug", "neo4j"])
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def empty_store(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[GraphStore]:
    """A real, empty, un-migrated store of the parameterised backend."""
    if backend == "ladybug":
        store: GraphStore = LadybugStore(tmp_path / "store" / "ackb.lbug")
    else:
        from kb.neo4j_store import Neo4jStore

        uri, user, password = request.getfixturevalue("neo4j_server")
        store = Neo4jStore(uri, user=user, password=password)
        _wipe_neo4j(store)
    yield store
    store.close()


@pytest.fixture
def store(empty_store: GraphStore) -> GraphStore:
    """A real, migrated, empty store of the parameterised backend."""
    migrate.migrate(empty_store)
    return empty_store


@pytest.fixture
def media_dir(tmp_path: Path) -> Path:
    path = tmp_path / "media"
    path.mkdir()
    return path


@pytest.fixture(scope="session")
def small_ackb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small synthetic ACKB directory (read-only: copy it before editing)."""
    directory = tmp_path_factory.mktemp("ackb") / "small"
    synthetic_ackb(directory, products=6, clips_per_product=4, categories=3)
    return directory


@pytest.fixture
def editable_ackb(small_ackb: Path, tmp_path: Path) -> Path:
    """A private copy of the small ACKB that a test may break."""
    target = tmp_path / "ackb"
    shutil.copytree(small_ackb, target)
    return target


def snapshot(store: GraphStore, media_dir: Path, tmp_path: Path) -> dict[str, bytes]:
    """Every exported file's bytes: equal snapshots mean equal stores."""
    target = tmp_path / f"snapshot-{len(list(tmp_path.glob('snapshot-*')))}"
    export_ackb(store, target, media_dir)
    return {str(p.relative_to(target)): p.read_bytes() for p in sorted(target.rglob("*")) if p.is_file()}


@pytest.fixture
def reopen_read_only(store: GraphStore, request: pytest.FixtureRequest):  # noqa: ANN201
    """A function closing the writable `store` (Ladybug allows one writer) and opening it read-only."""

    def reopen() -> GraphStore:
        if isinstance(store, LadybugStore):
            store.close()
            return LadybugStore(store.path, read_only=True)
        from kb.neo4j_store import Neo4jStore

        uri, user, password = request.getfixturevalue("neo4j_server")
        return Neo4jStore(uri, user=user, password=password, read_only=True)

    return reopen
