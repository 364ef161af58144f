"""`kdcvg ui add-user|list-users` and the start-up refusals, plus the app's safe rendering helpers.

The users file must hold bcrypt hashes that streamlit-authenticator accepts, never the password;
graph text must come out of `ui.render` inert (escaped markdown, quoted DOT, plain CSV).
"""

from __future__ import annotations

import csv
import io
import stat
from pathlib import Path

import bcrypt
import pytest
import yaml
from click.testing import Result
from typer.testing import CliRunner

from cli.main import app
from ui.auth import User
from ui.render import graph_dot, md_escape, to_csv

runner = CliRunner()


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """An empty data dir (no store, no users) with no personal config."""
    return {"KDCVG_DATA": str(tmp_path / "data"), "XDG_CONFIG_HOME": str(tmp_path / "config")}


def users_file(env: dict[str, str]) -> Path:

    """Where the commands write the users file for `env`."""
    return Path(env["KDCVG_DATA"]) / "ui" / "users.yaml"


def test_add_user_writes_a_private_bcrypt_hash_and_roles(env: dict[str, str]) -> None:
    result = runner.invoke(app, ["ui", "add-user", "ann", "--role", "annotator", "--role", "reviewer"], input="s3cret-pass\ns3cret-pass\n", env=env)
    assert result.exit_code == 0, result.output
    path = users_file(env)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and "s3cret-pass" not in path.read_text()
    entry = yaml.safe_load(path.read_text())["credentials"]["usernames"]["ann"]
    assert bcrypt.checkpw(b"s3cret-pass", entry["password"].encode()) and entry["roles"] == ["annotator", "reviewer"]
    listed = runner.invoke(app, ["ui", "list-users"], env=env)
    assert listed.exit_code == 0 and "annotator, reviewer" in listed.output and "$2b$" not in listed.output


def add(env: dict[str, str], username: str, password: str, *options: str) -> Result:
    """`kdcvg ui add-user USERNAME OPTIONS --password-stdin` with the password piped in."""
    return runner.invoke(app, ["ui", "add-user", username, *options, "--password-stdin"], input=password + "\n", env=env)


@pytest.mark.parametrize(
    "username, options, password, message",
    [
        ("Bad Name", ["--role", "annotator"], "long-enough-1", "username"),
        ("bob", ["--role", "admin"], "long-enough-1", "roles must be among"),
        ("bob", ["--role", "analyst"], "short", "at least 8 characters"),
        ("bob", ["--role", "analyst"], "é" * 37, "at most 72 bytes"),
    ],
)
def test_add_user_refuses_bad_input(env: dict[str, str], username: str, options: list[str], password: str, message: str) -> None:
    result = add(env, username, password, *options)
    assert result.exit_code == 2 and message in result.output and not users_file(env).exists()


def test_password_on_the_command_line_is_refused(env: dict[str, str]) -> None:
    result = runner.invoke(app, ["ui", "add-user", "bob", "--role", "analyst", "--password", "long-enough-1"], env=env)
    assert result.exit_code == 2 and "--password-stdin" in result.output and not users_file(env).exists()
    assert add(env, "bob", "long-enough-1", "--role", "analyst").exit_code == 0
    change = runner.invoke(app, ["ui", "set-password", "bob", "--password", "long-enough-2"], env=env)
    entry = yaml.safe_load(users_file(env).read_text())["credentials"]["usernames"]["bob"]
    assert change.exit_code == 2 and bcrypt.checkpw(b"long-enough-1", entry["password"].encode())


def test_existing_user_is_kept_unless_replaced(env: dict[str, str]) -> None:
    assert add(env, "ann", "first-pass-1", "--role", "analyst").exit_code == 0
    again = add(env, "ann", "second-pass-2", "--role", "annotator")
    assert again.exit_code == 2 and "already exists" in again.output
    quiet = add(env, "ann", "other-pass-3", "--role", "analyst", "--if-absent")
    assert quiet.exit_code == 0 and "nothing to do" in quiet.output
    entry = yaml.safe_load(users_file(env).read_text())["credentials"]["usernames"]["ann"]
    assert bcrypt.checkpw(b"first-pass-1", entry["password"].encode())
    replaced = add(env, "ann", "second-pass-2", "--role", "annotator", "--replace")
    entry = yaml.safe_load(users_file(env).read_text())["credentials"]["usernames"]["ann"]
    assert replaced.exit_code == 0 and bcrypt.checkpw(b"second-pass-2", entry["password"].encode()) and entry["roles"] == ["annotator"]


def test_ui_refuses_to_start_without_users_or_store(env: dict[str, str]) -> None:
    no_users = runner.invoke(app, ["ui"], env=env)
    assert no_users.exit_code == 2 and "kdcvg ui add-user" in no_users.output
    add(env, "ann", "long-enough-1", "--role", "annotator")
    no_store = runner.invoke(app, ["ui"], env=env)
    assert no_store.exit_code == 2 and "kdcvg kb migrate" in no_store.output


def test_plain_text_password_in_users_file_is_refused(env: dict[str, str]) -> None:
    path = users_file(env)
    path.parent.mkdir(parents=True)
    path.write_text(yaml.safe_dump({"credentials": {"usernames": {"ann": {"password": "plain", "roles": ["annotator"]}}}}))
    result = runner.invoke(app, ["ui", "list-users"], env=env)
    assert result.exit_code == 2 and "bcrypt" in result.output


def test_roles_grant_capabilities() -> None:
    assert User("a", "A", ("analyst",)).can("console") and not User("a", "A", ("analyst",)).can("curate")
    assert User("r", "R", ("reviewer",)).can("review") and User("r", "R", ("reviewer",)).can("curate")
    assert not User("n", "N", ("annotator",)).can("review") and not User("n", "N", ("annotator",)).can("console")


def test_markdown_escape_leaves_no_live_markup() -> None:
    escaped = md_escape('<script>alert(1)</script> ![x](http://e.invalid/x.png) **bold** [l](javascript:x)')
    assert "<script>" not in escaped and "](" not in escaped and "**" not in escaped
    assert escaped.replace("\\", "") == '<script>alert(1)</script> ![x](http://e.invalid/x.png) **bold** [l](javascript:x)'


def test_graph_dot_draws_returned_nodes_and_relationships_with_quoted_labels() -> None:
    product = {"_label": "Product", "id": "p1", "name": 'Evil "quote" \\ <b>'}
    point = {"_label": "SellingPoint", "id": "s1", "text": "Keeps cold"}
    rows = [[product, {"_type": "HAS_SELLING_POINT"}, point], [product, {"_type": "HAS_SELLING_POINT"}, point], [42, "text"]]
    dot = graph_dot(rows)
    assert dot is not None and dot.count("->") == 1 and dot.count("[label=") == 3
    assert 'label="Product: Evil \\"quote\\" \\\\ <b>"' in dot
    assert graph_dot([[1, "a"]]) is None
    many = [[{"_label": "Clip", "id": f"c{i}"}] for i in range(300)]
    assert graph_dot(many, max_nodes=50).count("[label=") == 50


def test_csv_keeps_nodes_as_json_and_quotes_text() -> None:
    text = to_csv(["n", "x"], [[{"_label": "Product", "id": "p,1"}, 'say "hi"\nthere']])
    parsed = list(csv.reader(io.StringIO(text)))
    assert parsed == [["n", "x"], ['{"_label": "Product", "id": "p,1"}', 'say "hi"\nthere']]
