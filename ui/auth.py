"""Who may use the curation app and what each role may do: the users file and sign-in.

The users file (`Settings.ui_users_path`, default `<data>/ui/users.yaml`, mode 0600) holds bcrypt
hashes and roles only: never a password, never a secret. `kdcvg ui add-user` writes it; the app
refuses to start without it. Sign-in is this module's form; sessions are server-side (ui/sessions.py).

Roles (a user may hold several):
- analyst: reads everything (browse, audit trail) and runs read-only Cypher in the console;
- annotator: reads, curates (products, selling points, clips, motions, links, tags) and generates;
- reviewer: everything an annotator does, plus the review queue (accepting/rejecting SAR's proposals).
"""

from __future__ import annotations

import os
import re
import secrets
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import bcrypt
import yaml

from kdcvg.errors import BadInputError
from ui.sessions import SessionStore, private_folder

ROLES: tuple[str, ...] = ("annotator", "reviewer", "analyst")

# capability -> roles that have it
CAPABILITIES: dict[str, frozenset[str]] = {
    "read": frozenset(ROLES),
    "curate": frozenset({"annotator", "reviewer"}),
    "generate": frozenset({"annotator", "reviewer"}),
    "review": frozenset({"reviewer"}),
    "console": frozenset({"analyst"}),
}

USERNAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
MIN_PASSWORD = 8
MAX_PASSWORD_BYTES = 72  # bcrypt reads no further (and bcrypt 5 refuses longer input)
BCRYPT_HASH = re.compile(r"^\$2[aby]\$\d{2}\$[./A-Za-z0-9]{53}$")


class UsersFileError(BadInputError):
    """The users file is missing, unreadable or malformed; the message says how to fix it."""


@dataclass(frozen=True)
class User:
    """The signed-in user: every write the app makes is attributed to `username`."""

    username: str
    name: str
    roles: tuple[str, ...]

    def can(self, capability: str) -> bool:
        """Whether one of the user's roles grants `capability` (see CAPABILITIES)."""
        return bool(set(self.roles) & CAPABILITIES[capability])


def _empty_config() -> dict[str, Any]:
    """A new users config with no users (it holds no secret: the session key has its own file)."""
    return {"credentials": {"usernames": {}}}


def hash_password(password: str) -> str:
    """A bcrypt hash of `password`, as streamlit-authenticator checks it."""
    return bcrypt.hashpw(password.encode("utf-8"), bcrypt.gensalt()).decode("ascii")


def load_users(path: Path) -> dict[str, Any]:
    """The users file (`credentials: usernames: NAME: {name, password, roles}`); refuses plain-text passwords and unknown roles.

    A `cookie` section left by earlier versions is ignored (and dropped at the next write): no secret lives here.
    """
    if not path.is_file():
        raise UsersFileError(
            f"no users file at {path}: create the first user with `kdcvg ui add-user NAME --role annotator` "
            "(or set KDCVG_UI_USERS)"
        )
    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise UsersFileError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(config, dict) or not isinstance(config.get("credentials", {}).get("usernames"), dict):
        raise UsersFileError(f"{path}: expected `credentials: usernames: ...` (write it with `kdcvg ui add-user`)")
    users = config["credentials"]["usernames"]
    if not users:
        raise UsersFileError(f"{path} has no users: add one with `kdcvg ui add-user NAME --role annotator`")
    for username, entry in users.items():
        if not isinstance(entry, dict) or not BCRYPT_HASH.match(str(entry.get("password", ""))):
            raise UsersFileError(f"{path}: user {username!r} needs a bcrypt password hash (set it with `kdcvg ui add-user`)")
        roles = entry.get("roles")
        if not isinstance(roles, list) or not roles or not set(roles) <= set(ROLES):
            raise UsersFileError(f"{path}: user {username!r} needs roles from {', '.join(ROLES)}, got {roles!r}")
    return config


def _check_password_rules(password: str) -> None:
    """Refuse a password too short to be one."""
    if len(password) < MIN_PASSWORD:
        raise UsersFileError(f"the password must have at least {MIN_PASSWORD} characters")
    if len(password.encode("utf-8")) > MAX_PASSWORD_BYTES:
        raise UsersFileError(f"the password must have at most {MAX_PASSWORD_BYTES} bytes (bcrypt's limit)")


def _write_users(path: Path, config: dict[str, Any]) -> None:
    """Write the users file atomically, mode 0600, in a folder only its owner can enter; legacy secrets dropped."""
    config.pop("cookie", None)
    private_folder(path.parent)
    temporary = path.with_name(f".{path.name}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        yaml.safe_dump(config, handle, sort_keys=True)
    os.replace(temporary, path)


def add_user(path: Path, username: str, password: str, roles: list[str], name: str | None = None, *, replace: bool = False) -> None:
    """Add (or with `replace`, overwrite) a user with a bcrypt hash of `password`; creates the file (0600).

    Replacing a user ends their sessions (the caller does it with SessionStore.end_user).
    """
    if not USERNAME.match(username):
        raise UsersFileError(f"username {username!r}: use 1-64 lower-case letters, digits, '_', '.', '-'")
    _check_password_rules(password)
    unknown = sorted(set(roles) - set(ROLES))
    if not roles or unknown:
        raise UsersFileError(f"roles must be among {', '.join(ROLES)}; got {', '.join(roles) or 'none'}")
    config = load_users(path) if path.is_file() and _has_users(path) else _empty_config()
    users = config["credentials"]["usernames"]
    if username in users and not replace:
        raise UsersFileError(f"user {username!r} already exists in {path} (use --replace to change it)")
    users[username] = {"name": name or username, "password": hash_password(password), "roles": sorted(set(roles))}
    _write_users(path, config)


def set_password(path: Path, username: str, password: str) -> None:
    """Give an existing user a new password (the caller ends their sessions)."""
    _check_password_rules(password)
    config = load_users(path)
    entry = config["credentials"]["usernames"].get(username)
    if entry is None:
        raise UsersFileError(f"no user {username!r} in {path} (add one with `kdcvg ui add-user`)")
    entry["password"] = hash_password(password)
    _write_users(path, config)


def drop_legacy_secret(path: Path) -> bool:
    """Remove a `cookie` key left in the users file by earlier versions; whether there was one."""
    if not path.is_file():
        return False
    config = load_users(path)
    if "cookie" not in config:
        return False
    _write_users(path, config)
    return True


def _has_users(path: Path) -> bool:
    """Whether the file already holds a config worth keeping (else add_user starts a fresh one)."""
    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError):
        return False
    return isinstance(config, dict) and bool((config.get("credentials") or {}).get("usernames"))


@cache
def _dummy_hash() -> bytes:
    """A bcrypt hash of a random password, made like real ones: checked when the username is unknown."""
    return hash_password(secrets.token_urlsafe(16)).encode("ascii")


def check_password(password: str, hashed: bytes) -> bool:
    """The one password check every sign-in runs (bcrypt, constant work for a given cost).

    A password longer than any stored one can be (MAX_PASSWORD_BYTES) is checked truncated, for the
    same cost, and never matches.
    """
    given = password.encode("utf-8")
    matches = bcrypt.checkpw(given[:MAX_PASSWORD_BYTES], hashed)
    return matches and len(given) <= MAX_PASSWORD_BYTES


def verify(config: dict[str, Any], username: str, password: str) -> User | None:
    """The user if `password` is theirs, else None; an unknown name costs the same bcrypt check as a known one."""
    entry = config["credentials"]["usernames"].get(username)
    hashed = str(entry["password"]).encode("ascii") if entry is not None else _dummy_hash()
    matches = check_password(password, hashed)
    if entry is None or not matches:
        return None
    return User(username, str(entry.get("name") or username), tuple(entry["roles"]))


def user_from(config: dict[str, Any], username: str | None) -> User | None:
    """The User of that name as the users file describes them now (None if removed)."""
    entry = config["credentials"]["usernames"].get(username) if username else None
    if entry is None:
        return None
    return User(str(username), str(entry.get("name") or username), tuple(entry["roles"]))


def throttle_subjects(username: str, client: str | None) -> list[str]:
    """What a sign-in attempt counts against: the user it names and the client address it comes from."""
    subjects = [f"client:{client or 'unknown'}"]
    if USERNAME.match(username):
        subjects.append(f"user:{username}")
    return subjects


# --- Streamlit parts (imported lazily: the CLI uses the functions above without Streamlit) ---

TOKEN = "_kdcvg_session"  # session-state key of the signed-in browser session's token


def current_session_user(config: dict[str, Any], sessions: SessionStore) -> User | None:
    """The signed-in user of this browser session, checked against the server-side session on every run."""
    import streamlit as st

    token = st.session_state.get(TOKEN)
    user = user_from(config, sessions.user_of(token)) if token else None
    if user is None:
        st.session_state.pop(TOKEN, None)
    return user


def sign_in_form(config: dict[str, Any], sessions: SessionStore) -> User | None:
    """The sign-in form; the user once the right password is given (throttled per user and per client address)."""
    import streamlit as st

    slot = st.empty()
    with slot.container():
        st.title("KD-CVG curation")
        with st.form("sign_in"):
            username = st.text_input("Username", max_chars=64).strip()
            password = st.text_input("Password", type="password", max_chars=1024)
            submitted = st.form_submit_button("Sign in", type="primary")
        if not submitted:
            return None
        subjects = throttle_subjects(username, st.context.ip_address)
        wait = sessions.wait_s(subjects)
        if wait > 0:
            st.error(f"Too many failed sign-ins for this user or from this address: try again in {int(wait) + 1} s.")
            return None
        user = verify(config, username, password)
        if user is None:
            sessions.failed(subjects)
            st.error("Username or password is incorrect.")
            return None
        sessions.succeeded(subjects[1:])
        st.session_state[TOKEN] = sessions.start(user.username)
    slot.empty()
    return user


def sign_out_button(sessions: SessionStore) -> None:
    """The sidebar's sign-out button: ends the session server-side and shows the sign-in form."""
    import streamlit as st

    if st.sidebar.button("Sign out", key="sign_out"):
        sessions.end(st.session_state.pop(TOKEN, None))
        st.session_state.pop("user", None)
        st.rerun()
