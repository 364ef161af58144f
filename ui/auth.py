"""Who may use the curation app and what each role may do: the users file and sign-in.

The users file (`Settings.ui_users_path`, default `<data>/ui/users.yaml`, mode 0600) holds bcrypt
hashes only, never a password, plus the secret that signs the re-login cookie. `kdcvg ui add-user`
writes it; the app refuses to start without it. Sign-in is streamlit-authenticator's form.

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
from pathlib import Path
from typing import Any

import bcrypt
import yaml

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
BCRYPT_HASH = re.compile(r"^\$2[aby]\$\d{2}\$[./A-Za-z0-9]{53}$")
COOKIE_NAME = "kdcvg_ui"


class UsersFileError(ValueError):
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

    """A new users config with a fresh random cookie secret and no users."""
    return {"cookie": {"name": COOKIE_NAME, "key": secrets.token_urlsafe(32), "expiry_days": 1}, "credentials": {"usernames": {}}}


def hash_password(password: str) -> str:
    """A bcrypt hash of `password`, as streamlit-authenticator checks it."""
    return bcrypt.hashpw(password.encode("utf-8"), bcrypt.gensalt()).decode("ascii")


def load_users(path: Path) -> dict[str, Any]:
    """The users file as streamlit-authenticator's config; refuses plain-text passwords and unknown roles."""
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
    cookie = config.get("cookie")
    if not isinstance(cookie, dict) or not isinstance(cookie.get("key"), str) or len(cookie["key"]) < 16:
        raise UsersFileError(f"{path}: `cookie.key` must be a secret of at least 16 characters")
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


def add_user(path: Path, username: str, password: str, roles: list[str], name: str | None = None, *, replace: bool = False) -> None:
    """Add (or with `replace`, overwrite) a user with a bcrypt hash of `password`; creates the file (0600)."""
    if not USERNAME.match(username):
        raise UsersFileError(f"username {username!r}: use 1-64 lower-case letters, digits, '_', '.', '-'")
    if len(password) < MIN_PASSWORD:
        raise UsersFileError(f"the password must have at least {MIN_PASSWORD} characters")
    unknown = sorted(set(roles) - set(ROLES))
    if not roles or unknown:
        raise UsersFileError(f"roles must be among {', '.join(ROLES)}; got {', '.join(roles) or 'none'}")
    config = load_users(path) if path.is_file() and _has_users(path) else _empty_config()
    users = config["credentials"]["usernames"]
    if username in users and not replace:
        raise UsersFileError(f"user {username!r} already exists in {path} (use --replace to change it)")
    users[username] = {"name": name or username, "password": hash_password(password), "roles": sorted(set(roles))}
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        yaml.safe_dump(config, handle, sort_keys=True)
    os.replace(temporary, path)


def _has_users(path: Path) -> bool:
    """Whether the file already holds a config worth keeping (else add_user starts a fresh one)."""
    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError):
        return False
    return isinstance(config, dict) and bool((config.get("credentials") or {}).get("usernames"))


def sign_in(config: dict[str, Any]) -> User | None:
    """Render the sign-in form (or the sign-out button when signed in); the signed-in User or None."""
    import streamlit as st
    import streamlit_authenticator as stauth

    authenticator = stauth.Authenticate(
        config["credentials"],
        config["cookie"].get("name", COOKIE_NAME),
        config["cookie"]["key"],
        float(config["cookie"].get("expiry_days", 1)),
        auto_hash=False,
    )
    st.session_state["_authenticator"] = authenticator
    if not st.session_state.get("authentication_status"):
        st.title("KD-CVG curation")
        authenticator.login(location="main", fields={"Form name": "Sign in", "Username": "Username", "Password": "Password", "Login": "Sign in"})
        if st.session_state.get("authentication_status") is False:
            st.error("Username or password is incorrect.")
        if not st.session_state.get("authentication_status"):
            return None
    username = st.session_state["username"]
    entry = config["credentials"]["usernames"].get(username)
    if entry is None:  # removed from the file since signing in
        authenticator.logout(location="unrendered")
        return None
    return User(username, str(entry.get("name") or username), tuple(entry["roles"]))


def sign_out_button() -> None:
    """The sidebar's sign-out button for the authenticator `sign_in` created in this run."""
    import streamlit as st

    st.session_state["_authenticator"].logout("Sign out", location="sidebar", key="sign_out")
    if not st.session_state.get("authentication_status"):
        st.rerun()
