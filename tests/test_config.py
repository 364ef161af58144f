"""Configuration: defaults that work here, a TOML file, environment variables on top, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from kdcvg.config import ConfigError, load_settings


def test_defaults_need_nothing(tmp_path: Path) -> None:
    settings = load_settings(environ={}, config_file=tmp_path / "absent.toml")
    assert settings.store_backend == "ladybug" and settings.query_timeout_s == 30
    assert settings.ladybug_path == settings.data_dir / "ackb.lbug" and settings.media_dir == settings.data_dir / "media"


def test_environment_overrides_file(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f'data_dir = "{tmp_path / "from-file"}"\nquery_timeout_s = 5\n')
    settings = load_settings(environ={"KDCVG_DATA": str(tmp_path / "from-env")}, config_file=config)
    assert settings.data_dir == tmp_path / "from-env" and settings.query_timeout_s == 5


def test_neo4j_uri_selects_neo4j_unless_backend_is_forced(tmp_path: Path) -> None:
    absent = tmp_path / "absent.toml"
    assert load_settings(environ={"NEO4J_URI": "bolt://localhost:7687"}, config_file=absent).store_backend == "neo4j"
    forced = load_settings(environ={"NEO4J_URI": "bolt://x:7687", "KDCVG_BACKEND": "ladybug"}, config_file=absent)
    assert forced.store_backend == "ladybug"


@pytest.mark.parametrize(
    "content, environ, message",
    [
        ("query_timeout_s = -1\n", {}, "query_timeout_s"),
        ("colour = 'red'\n", {}, "colour"),
        ("not toml at all ][\n", {}, "not valid TOML"),
        ("", {"KDCVG_BACKEND": "sqlite"}, "backend"),
        ("", {"KDCVG_BACKEND": "neo4j"}, "NEO4J_URI"),
    ],
)
def test_bad_configuration_names_the_setting(tmp_path: Path, content: str, environ: dict[str, str], message: str) -> None:
    config = tmp_path / "config.toml"
    config.write_text(content)
    with pytest.raises(ConfigError, match=message):
        load_settings(environ=environ, config_file=config)


def test_missing_config_file_named_by_env_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(environ={"KDCVG_CONFIG": str(tmp_path / "nope.toml")})
