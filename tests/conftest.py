"""Shared fixtures: a real store for every backend, and small ACKB directories.

Ladybug always runs. Neo4j runs against, in this order: the server NEO4J_URI names (its database
is wiped!), a local Neo4j Community server the session starts itself (kb.neo4j_server: needs Java
and Maven), or testcontainers' neo4j:5 where a Docker engine answers. When none is possible its
tests are skipped with the reason (`-ra` prints it) - except under CI=true, where that is a failure.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import pytest
from typer.testing import CliRunner, Result

from kb import migrate, neo4j_server
from kb.interchange import export_ackb
from kb.ladybug_store import LadybugStore
from kb.schema import MIGRATION_LABEL
from kb.store import GraphStore
from kb.synthetic import synthetic_ackb
from kdcvg.config import Settings, load_settings

MKR_PRODUCTS = "thermopeak-insulated-bottle,airbeat-wireless-earbuds,aquasonic-electric-toothbrush"
TINY_CLIP = "KdcvgTinyClip32"


def _docker_answers() -> bool:
    try:
        import docker

        docker.from_env(timeout=3).ping()
        return True
    except Exception:
        return False


def unavailable(reason: str) -> NoReturn:
    """Skip with the reason; under CI=true fail instead, so CI never goes green by skipping."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (a failure under CI=true, not a skip)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def local_neo4j(tmp_path_factory: pytest.TempPathFactory) -> Iterator[neo4j_server.Neo4jServer]:
    """A Neo4j Community server this session starts (data in a temporary folder), stopped at the end."""
    reason = neo4j_server.java_available()
    if reason is not None:
        unavailable(f"cannot start a local Neo4j server: {reason}")
    home = tmp_path_factory.mktemp("neo4j-server")
    try:
        server = neo4j_server.start(home, port=neo4j_server.free_port())
    except neo4j_server.Neo4jServerError as exc:
        unavailable(f"the local Neo4j server did not start: {exc}")
    try:
        yield server
    finally:
        neo4j_server.stop(home)


@pytest.fixture(scope="session")
def neo4j_server_uri(request: pytest.FixtureRequest) -> Iterator[tuple[str, str, str]]:
    """(uri, user, password) of a Neo4j 5 server, or skip (fail under CI=true) with the reason."""
    if os.environ.get("NEO4J_URI"):
        yield os.environ["NEO4J_URI"], os.environ.get("NEO4J_USER", "neo4j"), os.environ.get("NEO4J_PASSWORD", "")
        return
    if neo4j_server.java_available() is None or not _docker_answers():
        server = request.getfixturevalue("local_neo4j")
        yield server.uri, server.user, server.password
        return
    from testcontainers.neo4j import Neo4jContainer

    with Neo4jContainer("neo4j:5") as container:
        yield container.get_connection_url(), "neo4j", container.password


def wipe_neo4j(store: GraphStore) -> None:
    """Make the database empty and un-migrated: no nodes, no constraints, no indexes (but the built-in lookups)."""
    store.run("MATCH (n) DETACH DELETE n")
    for name in store.query("SHOW CONSTRAINTS YIELD name RETURN name").rows:
        store.query("DROP CONSTRAINT $name IF EXISTS", {"name": name[0]})
    for name in store.query("SHOW INDEXES YIELD name, type WHERE type <> 'LOOKUP' RETURN name").rows:
        store.query("DROP INDEX $name IF EXISTS", {"name": name[0]})


def _neo4j_schema(store: GraphStore) -> tuple:
    """What a migrated database's schema is: constraint and index names, and the migration records."""
    constraints = store.query("SHOW CONSTRAINTS YIELD name RETURN name ORDER BY name").rows
    indexes = store.query("SHOW INDEXES YIELD name, type WHERE type <> 'LOOKUP' RETURN name ORDER BY name").rows
    applied = store.query(f"MATCH (m:{MIGRATION_LABEL}) RETURN m.version, m.checksum ORDER BY m.version").rows
    return constraints, indexes, applied


_MIGRATED_NEO4J: list[tuple] = []  # the schema of a freshly migrated database, once seen this session


def reset_migrated_neo4j(store: GraphStore) -> None:
    """Make the database empty and migrated, cheaply: when its schema is exactly what `migrate` leaves,
    delete only the data; otherwise wipe everything and migrate again (dropping and re-creating
    constraints costs about a second per test on Neo4j)."""
    if _MIGRATED_NEO4J:
        store.run(f"MATCH (n) WHERE NOT n:{MIGRATION_LABEL} DETACH DELETE n")
        if _neo4j_schema(store) == _MIGRATED_NEO4J[0]:
            return
    wipe_neo4j(store)
    migrate.migrate(store)
    _MIGRATED_NEO4J[:] = [_neo4j_schema(store)]


@pytest.fixture(params=["ladybug", "neo4j"])
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


def _open_store(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> GraphStore:
    if backend == "ladybug":
        return LadybugStore(tmp_path / "store" / "ackb.lbug")
    from kb.neo4j_store import Neo4jStore

    uri, user, password = request.getfixturevalue("neo4j_server_uri")
    return Neo4jStore(uri, user=user, password=password)


@pytest.fixture
def empty_store(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[GraphStore]:
    """A real, empty, un-migrated store of the parameterised backend."""
    store = _open_store(backend, tmp_path, request)
    if store.dialect == "neo4j":
        wipe_neo4j(store)
    yield store
    store.close()


@pytest.fixture
def store(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[GraphStore]:
    """A real, migrated, empty store of the parameterised backend."""
    store = _open_store(backend, tmp_path, request)
    if store.dialect == "neo4j":
        reset_migrated_neo4j(store)
    else:
        migrate.migrate(store)
    yield store
    store.close()


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

        uri, user, password = request.getfixturevalue("neo4j_server_uri")
        return Neo4jStore(uri, user=user, password=password, read_only=True)

    return reopen


@pytest.fixture(scope="session")
def mkr_world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, Path]:
    """A small demo ACKB with a trained SAR checkpoint, and a tiny random-weight AnimateDiff (shared by MKR tests)."""
    from cli.main import app
    from generation.tiny import write_tiny_animatediff

    root = tmp_path_factory.mktemp("mkr")
    env = {"KDCVG_DATA": str(root / "data"), "XDG_CONFIG_HOME": str(root / "config")}
    runner = CliRunner()
    for args in (["kb", "demo", "--products", MKR_PRODUCTS, "--clips-per-product", "6"], ["retrieval", "train", "--epochs", "5"]):
        result = runner.invoke(app, args, env=env)
        assert result.exit_code == 0, result.output
    settings = load_settings(environ=env, config_file=root / "absent.toml")
    return settings, write_tiny_animatediff(root / "tiny-animatediff")


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """(model name, checkpoint) of a tiny random-weight open_clip model registered from a JSON config (32-px images)."""
    import json

    import open_clip
    import torch

    base = tmp_path_factory.mktemp("tiny-clip")
    (base / "configs").mkdir()
    config = {
        "embed_dim": 16,
        "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 16},
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
    }
    (base / "configs" / f"{TINY_CLIP}.json").write_text(json.dumps(config))
    open_clip.add_model_config(base / "configs")
    torch.manual_seed(0)
    torch.save(open_clip.create_model(TINY_CLIP).state_dict(), base / "ckpt.pt")
    return TINY_CLIP, base / "ckpt.pt"


def generated_state(settings: Settings) -> tuple[list[str], list[str]]:
    """Files under media/generated and the GeneratedVideo ids: equal states mean nothing was generated or recorded."""
    from kb.backends import open_store

    folder = settings.media_dir / "generated"
    files = sorted(p.name for p in folder.glob("*")) if folder.is_dir() else []
    with open_store(settings, read_only=True) as store:
        nodes = [row[0] for row in store.query("MATCH (g:GeneratedVideo) RETURN g.id ORDER BY g.id").rows]
    return files, nodes


def kdcvg_in(settings: Settings, *args: str, generation_model: Path | None = None) -> Result:
    """Run the `kdcvg` CLI in-process on `settings`' data directory (no config file; backbone setting as given)."""
    from cli.main import app

    env = {
        "KDCVG_DATA": str(settings.data_dir),
        "XDG_CONFIG_HOME": str(settings.data_dir.parent / "config"),
        "KDCVG_GENERATION_MODEL": str(generation_model or ""),
    }
    return CliRunner().invoke(app, list(args), env=env)


def ladybug_world(root: Path, ackb: Path) -> Settings:
    """Settings for a fresh data dir under `root` whose Ladybug store holds `ackb` (migrated, closed again)."""
    from kb.interchange import import_ackb

    settings = load_settings(environ={"KDCVG_DATA": str(root / "data")}, config_file=root / "absent.toml")
    settings.media_dir.mkdir(parents=True)
    with LadybugStore(settings.ladybug_path) as store:
        migrate.migrate(store)
        import_ackb(store, ackb, settings.media_dir)
    return settings


@pytest.fixture
def analyst_world(tmp_path: Path, small_ackb: Path) -> Settings:
    """A private data dir with the small ACKB in a closed Ladybug store, as an analyst's query finds it."""
    return ladybug_world(tmp_path / "analyst", small_ackb)


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random-weight AnimateDiff pipeline folder, one per test module (a module may override it)."""
    from generation.tiny import write_tiny_animatediff

    return write_tiny_animatediff(tmp_path_factory.mktemp("tiny") / "animatediff")


@pytest.fixture(scope="module")
def pipe(tiny_dir: Path):  # noqa: ANN201
    """The tiny pipeline loaded once per module (tests may change its state: never shared across modules)."""
    from generation.backbones import load_backbone

    return load_backbone(tiny_dir)


@pytest.fixture(scope="module")
def reference_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A rendered 12-frame reference clip panning right."""
    from kb.demo.clips import render_clip

    return render_clip(tmp_path_factory.mktemp("ref") / "pan.mp4", motion="pan_right", seed=1, num_frames=12)
