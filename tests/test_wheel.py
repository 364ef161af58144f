"""A built wheel works on its own: installed (not editable) into a fresh virtual environment, it migrates a store.

The dependencies are not reinstalled (torch alone is 3 GB): the fresh environment sees this
environment's site-packages as a plain path entry, which does not run their `.pth` files, so the
editable install of this checkout stays invisible and only the wheel's copy of our packages can load.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project's wheel, built from this checkout without network or build isolation."""
    out = tmp_path_factory.mktemp("wheel")
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet", "-w", str(out), str(REPO)],
        capture_output=True,
        text=True,
    )
    assert build.returncode == 0, build.stderr
    (path,) = out.glob("kd_cvg-*.whl")
    return path


def test_wheel_ships_the_migrations(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for dialect in ("ladybug", "neo4j"):
        assert f"migrations/{dialect}/V0001__core_schema.cypher" in names


def test_installed_wheel_migrates_and_reports_stats(wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = Path(subprocess.check_output([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], text=True).strip())
    (site / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    install = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--quiet", str(wheel)],
        capture_output=True,
        text=True,
    )
    assert install.returncode == 0, install.stderr
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NEO4J_", "KDCVG_", "PYTHON"))}
    env |= {"KDCVG_DATA": str(tmp_path / "data"), "XDG_CONFIG_HOME": str(tmp_path / "config")}
    where = subprocess.check_output([python, "-c", "import kb, migrations; print(kb.__file__); print(migrations.__file__)"], cwd=tmp_path, env=env, text=True)
    assert all(line.startswith(str(site)) for line in where.split()), where
    kdcvg = venv / "bin" / "kdcvg"
    migrated = subprocess.run([kdcvg, "kb", "migrate"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert migrated.returncode == 0, migrated.stderr
    assert "applied V0001" in migrated.stdout
    stats = subprocess.run([kdcvg, "kb", "stats", "--json"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert stats.returncode == 0, stats.stderr
    report = json.loads(stats.stdout)
    shipped = len(list((REPO / "migrations" / "ladybug").glob("V*.cypher")))
    assert report["schema_version"] == shipped
    assert report["nodes"]["Product"] == 0
