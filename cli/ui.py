"""`kdcvg ui`: start the annotators' Streamlit app; `add-user`, `set-password`, `list-users`, `rotate-key` manage sign-in.

`ui_app` is registered on the main app by cli.main. Starting refuses clearly when there is no
users file, no migrated store, or another writer on the store, before Streamlit is launched.
Passwords are read from a prompt or from stdin (`--password-stdin`), never from the command line,
where every user of the machine could read them.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from cli.common import fail, opened_store, out, settings

if TYPE_CHECKING:
    from ui.sessions import SessionStore

ui_app = typer.Typer(help="The annotators' curation app (Streamlit).", invoke_without_command=True)
APP = Path(__file__).resolve().parent.parent / "ui" / "app.py"
PASSWORD_IN_ARGV = (
    "--password puts the password where every user of this machine can read it (the process list, shell history): "
    "type it at the prompt, or pipe it with --password-stdin"
)


def streamlit_options(port: int, address: str) -> list[str]:
    """The Streamlit server options the app runs with: no developer tools, no error details, small uploads."""
    from ui.uploads import MAX_UPLOAD_MB

    options = {
        "server.port": str(port),
        "server.address": address,
        "server.headless": "true",
        "server.fileWatcherType": "none",
        "server.runOnSave": "false",
        "server.enableXsrfProtection": "true",
        "server.maxUploadSize": str(MAX_UPLOAD_MB),
        "server.disconnectedSessionTTL": "30",  # uploads of a closed tab are dropped soon
        "global.developmentMode": "false",
        "browser.gatherUsageStats": "false",
        "client.toolbarMode": "viewer",
        "client.showErrorDetails": "none",
    }
    return [part for name, value in options.items() for part in (f"--{name}", value)]


@ui_app.callback()
def run(
    ctx: typer.Context,
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to serve on.")] = 8501,
    address: Annotated[str, typer.Option(help="Address to listen on (0.0.0.0 to serve your network).")] = "127.0.0.1",
) -> None:
    """Start the curation app (signed-in annotators, reviewers and analysts only)."""
    if ctx.invoked_subcommand is not None:
        return
    from kb import store_lock
    from ui.auth import UsersFileError, load_users
    from ui.sessions import SessionFileError, SessionStore

    config = settings()
    try:
        load_users(config.ui_users_path)
        SessionStore(config.ui_users_path.parent).check()
    except (UsersFileError, SessionFileError) as exc:
        fail(str(exc), 2)
    with opened_store(read_only=config.store_backend == "ladybug"):
        pass  # refuses a missing or un-migrated store now, with the command that fixes it
    try:
        lock = store_lock.acquire(config, store_lock.APP)
    except store_lock.StoreBusyError as exc:
        fail(str(exc), 2)
    os.umask(store_lock.PRIVATE_UMASK)  # the server creates media and database files owner-only
    store_lock.make_private(config)
    if lock is not None:  # the server keeps the lock for its whole life (exec keeps the pid and the descriptor)
        os.set_inheritable(lock.fd, True)
        os.environ[store_lock.INHERITED_FD] = str(lock.fd)
    out.print(f"KD-CVG curation app on http://{address}:{port} (users: {config.ui_users_path}); Ctrl+C stops it")
    argv = [sys.executable, "-m", "streamlit", "run", str(APP), *streamlit_options(port, address)]
    sys.stdout.flush()
    os.execv(sys.executable, argv)


def read_password(password_stdin: bool, password: str | None) -> str:
    """The new password: from stdin's first line with --password-stdin, else asked twice at a hidden prompt."""
    if password is not None:
        fail(PASSWORD_IN_ARGV, 2)
    if password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return typer.prompt("Password", hide_input=True, confirmation_prompt=True)


PasswordStdin = Annotated[bool, typer.Option("--password-stdin", help="Read the password from the first line of stdin.")]
PasswordArgv = Annotated[str | None, typer.Option("--password", hidden=True, help="Refused: use the prompt or --password-stdin.")]


def _sessions() -> SessionStore:
    """The app's session store (next to the users file)."""
    from ui.sessions import SessionStore

    return SessionStore(settings().ui_users_path.parent)


@ui_app.command("add-user")
def add_user(
    username: Annotated[str, typer.Argument(help="Sign-in name (lower-case letters, digits, _ . -).")],
    role: Annotated[list[str], typer.Option("--role", "-r", help="annotator, reviewer or analyst; repeat for several.")],
    password_stdin: PasswordStdin = False,
    password: PasswordArgv = None,
    name: Annotated[str | None, typer.Option(help="Display name (default: the username).")] = None,
    replace: Annotated[bool, typer.Option(help="Overwrite an existing user of that name (ends their sessions).")] = False,
    if_absent: Annotated[bool, typer.Option("--if-absent", help="Do nothing (and succeed) if the user exists.")] = False,
) -> None:
    """Add a user to the app's users file (created if absent, mode 0600); the password is asked for."""
    from ui.auth import UsersFileError, load_users
    from ui.auth import add_user as add

    path = settings().ui_users_path
    try:
        if if_absent and path.is_file() and username in load_users(path)["credentials"]["usernames"]:
            out.print(f"user {username!r} already exists in {path}: nothing to do")
            return
        add(path, username, read_password(password_stdin, password), role, name, replace=replace)
    except UsersFileError as exc:
        fail(str(exc), 2)
    ended = _sessions().end_user(username) if replace else 0
    out.print(f"user {username!r} ({', '.join(sorted(set(role)))}) written to {path}" + (f"; {ended} session(s) ended" if ended else ""))
    print("next: kdcvg ui   (then open http://127.0.0.1:8501 and sign in)")


@ui_app.command("set-password")
def set_password(
    username: Annotated[str, typer.Argument(help="An existing user.")],
    password_stdin: PasswordStdin = False,
    password: PasswordArgv = None,
) -> None:
    """Give a user a new password (asked for) and end all their sessions."""
    from ui.auth import UsersFileError
    from ui.auth import set_password as change

    path = settings().ui_users_path
    try:
        change(path, username, read_password(password_stdin, password))
    except UsersFileError as exc:
        fail(str(exc), 2)
    ended = _sessions().end_user(username)
    out.print(f"password of {username!r} changed in {path}; {ended} session(s) ended")


@ui_app.command("rotate-key")
def rotate_key() -> None:
    """Replace the app's session key and end every session (everyone signs in again)."""
    from ui.auth import UsersFileError, drop_legacy_secret
    from ui.sessions import SessionFileError

    sessions = _sessions()
    try:
        ended = sessions.rotate_key()
        dropped = drop_legacy_secret(settings().ui_users_path)
    except (UsersFileError, SessionFileError) as exc:
        fail(str(exc), 2)
    out.print(f"new session key in {sessions.key_path}; {ended} session(s) ended" + ("; old cookie key removed from the users file" if dropped else ""))


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
