"""Whether a process still runs: how crash recovery tells a dead writer's leftovers from a live one's."""

from __future__ import annotations

import os


def process_alive(pid: int) -> bool:
    """True while process `pid` exists (also when it belongs to another user and cannot be signalled)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
