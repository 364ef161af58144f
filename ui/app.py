"""The annotators' curation app: `kdcvg ui` (or `streamlit run ui/app.py`) starts it.

Signs the user in (server-side sessions, ui/sessions.py), opens the server's one store, and offers
the pages the user's roles allow (ui/auth.py says which). Each page lives in ui/views/ (not pages/,
which Streamlit would list before sign-in). A page's failure is one clear message on screen; the
traceback goes to the server's log only.
"""

from __future__ import annotations

import streamlit as st

from kb.migrate import MigrationError
from kb.store import StoreError
from kb.store_lock import StoreBusyError
from kdcvg.config import ConfigError, load_settings
from ui import auth, state, uploads
from ui.render import md_escape
from ui.sessions import SessionFileError, SessionStore

# (file, title, icon, capability)
PAGES: tuple[tuple[str, str, str, str], ...] = (
    ("views/browse.py", "Browse", ":material/search:", "read"),
    ("views/curate.py", "Curate", ":material/edit:", "curate"),
    ("views/review.py", "Review queue", ":material/fact_check:", "review"),
    ("views/generate.py", "Generate", ":material/movie:", "generate"),
    ("views/audit.py", "Audit trail", ":material/history:", "read"),
    ("views/console.py", "Cypher console", ":material/terminal:", "console"),
)
# Client options a script may set: no error details (tracebacks, paths) and no developer menu (clear cache, rerun).
CLIENT_OPTIONS = {"client.showErrorDetails": "none", "client.toolbarMode": "viewer"}


def main() -> None:
    """Sign in, open the store, show the navigation for the user's roles."""
    st.set_page_config(page_title="KD-CVG curation", page_icon=":material/movie:", layout="wide")
    for option, value in CLIENT_OPTIONS.items():
        if st.get_option(option) != value:  # `kdcvg ui` sets them at start; `streamlit run ui/app.py` gets them here
            st.set_option(option, value)
    uploads.install_gate()
    try:
        settings = load_settings()
        users = auth.load_users(settings.ui_users_path)
        sessions = SessionStore(settings.ui_users_path.parent)
        user = auth.current_session_user(users, sessions) or auth.sign_in_form(users, sessions)
    except (ConfigError, auth.UsersFileError, SessionFileError) as exc:
        st.error(md_escape(exc))
        st.stop()
    uploads.allow_this_session(user is not None and user.can("curate"))
    if user is None:
        st.session_state.pop("user", None)
        st.stop()
    st.session_state["user"] = user
    try:
        state.shared_store(settings)
    except (StoreError, MigrationError, StoreBusyError) as exc:
        st.error(md_escape(exc))
        st.stop()
    with st.sidebar:
        st.markdown(f"Signed in as **{md_escape(user.name)}**")
        st.caption("roles: " + ", ".join(user.roles))
    auth.sign_out_button(sessions)
    pages = [st.Page(path, title=title, icon=icon) for path, title, icon, capability in PAGES if user.can(capability)]
    page = st.navigation(pages)
    with state.page_errors():
        page.run()


main()
