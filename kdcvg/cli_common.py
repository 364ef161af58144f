"""What every `kdcvg` command shares: settings, the opened store, and errors as one clear line."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import typer
from rich.console import Console

from kdcvg.config import ConfigError, Settings, load_settings

err = Console(stderr=True)
out = Console()


def fail(message: str, code: int = 1) -> None:
    """Print `error: message` to stderr and exit."""
    err.print(f"[bold red]error:[/] {message}", highlight=False, markup=True, soft_wrap=True)
    raise typer.Exit(code)


@contextmanager
def handled_errors() -> Iterator[None]:
    """Our errors become one readable line; programming errors keep their traceback."""
    from kb.interchange import ImportValidationError
    from kb.migrate import MigrationError
    from kb.repository import RecordValidationError
    from kb.store import StoreError, StoreUnavailableError

    try:
        yield
    except (ImportValidationError, StoreUnavailableError) as exc:
        fail(str(exc), 2)
    except (ConfigError, MigrationError, RecordValidationError, StoreError, FileExistsError, FileNotFoundError) as exc:
        fail(str(exc))


def settings() -> Settings:
    with handled_errors():
        return load_settings()
    raise AssertionError("unreachable")


@contextmanager
def opened_store(read_only: bool = False, *, migrated: bool = True) -> Iterator[Any]:
    """The configured store; with `migrated`, refuses a store whose schema is not up to date."""
    from kb import migrate
    from kb.store import open_store

    config = settings()
    with handled_errors():
        with open_store(config, read_only=read_only) as store:
            if migrated:
                migrate.ensure_up_to_date(store)
            yield store


