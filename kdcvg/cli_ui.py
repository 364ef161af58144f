"""`kdcvg ui`: start the annotators' Streamlit app, and `kdcvg ui add-user` / `list-users` to manage who may sign in.

`ui_app` is registered on the main app by kdcvg.cli. Starting refuses clearly when there is no
users file or no migrated store, before Streamlit is launched.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from kdcvg.cli_common import fail, opened_store, out, settings

ui_app = typer.Typer(help="The annotators' curation app (Streamlit).", invoke_without_command=True)
APP = Path(__file__).resolve().parent.parent / "ui" / "app.py"


@ui_app.callback()
def run(
    ctx: typer.Context,
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to serve on.")] = 8501,
    address: Annotated[str, typer.Option(help="Address to listen on (0.0.0.0 to serve your network).")] = "127.0.0.1",
) -> None:
    """Start the curation app (signed-in annotators, reviewers and analysts only)."""
    if ctx.invoked_subcommand is not None:
        return
    from ui.auth import UsersFileError, load_users

    config = settings()
    try:
        load_users(config.ui_users_path)
    except UsersFileError as exc:
        fail(str(exc), 2)
    with opened_store(read_only=config.store_backend == "ladybug"):
        pass  # refuses a missing or un-migrated store now, with the command that fixes it
    out.print(f"KD-CVG curation app on http://{address}:{port} (users: {config.ui_users_path}); Ctrl+C stops it")
    argv = [
        sys.executable, "-m", "streamlit", "run", str(APP),
        "--server.port", str(port), "--server.address", address, "--server.headless", "true",
        "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none", "--client.toolbarMode", "viewer",
    ]  # fmt: skip
    sys.stdout.flush()
    os.execv(sys.executable, argv)


@ui_app.command("add-user")
def add_user(
    username: Annotated[str, typer.Argument(help="Sign-in name (lower-case letters, digits, _ . -).")],
    role: Annotated[list[str], typer.Option("--role", "-r", help="annotator, reviewer or analyst; repeat for several.")],
    password: Annotated[
        str, typer.Option(prompt=True, hide_input=True, confirmation_prompt=True, help="Asked for when not given; stored as a bcrypt hash.")
    ],
    name: Annotated[str | None, typer.Option(help="Display name (default: the username).")] = None,
    replace: Annotated[bool, typer.Option(help="Overwrite an existing user of that name.")] = False,
    if_absent: Annotated[bool, typer.Option("--if-absent", help="Do nothing (and succeed) if the user exists.")] = False,
) -> None:
    """Add a user to the app's users file (created with a fresh cookie secret if absent, mode 0600)."""
    from ui.auth import UsersFileError, load_users
    from ui.auth import add_user as add

    path = settings().ui_users_path
    try:
        if if_absent and path.is_file() and username in load_users(path)["credentials"]["usernames"]:
            out.print(f"user {username!r} already exists in {path}: nothing to do")
            return
        add(path, username, password, role, name, replace=replace)
    except UsersFileError as exc:
        fail(str(exc), 2)
    out.print(f"user {username!r} ({', '.join(sorted(set(role)))}) written to {path}")
    print("next: kdcvg ui   (then open http://127.0.0.1:8501 and sign in)")


@ui_app.command("list-users")
def list_users() -> None:
    """The users who may sign in, with their roles (never their hashes)."""
    from ui.auth import UsersFileError, load_users

    path = settings().ui_users_path
    try:
        users = load_users(path)["credentials"]["usernames"]
    except UsersFileError as exc:
        fail(str(exc), 2)
    table = Table("username", "name", "roles", title=str(path))
    for username, entry in sorted(users.items()):
        table.add_row(username, str(entry.get("name") or ""), ", ".join(entry["roles"]))
    out.print(table)
