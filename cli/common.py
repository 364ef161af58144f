"""What every `kdcvg` command shares: settings, the opened store, and errors as one clear line."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

import typer
from rich.console import Console

from kdcvg.config import Settings, load_settings
from kdcvg.errors import KdcvgError

err = Console(stderr=True)
out = Console()


def fail(message: str, code: int = 1) -> None:
    """Print `error: message` to stderr and exit."""
    err.print(f"[bold red]error:[/] {message}", highlight=False, markup=True, soft_wrap=True)
    raise typer.Exit(code)


@contextmanager
def handled_errors() -> Iterator[None]:
    """Our errors (the `KdcvgError` family) become one readable line and exit code 2.

    Anything else is a bug: it keeps its traceback and exits with code 1.
    """
    try:
        yield
    except KdcvgError as exc:
        fail(str(exc), 2)


def settings() -> Settings:
    with handled_errors():
        return load_settings()
    raise AssertionError("unreachable")


def command_name() -> str:
    """The running command as typed (`kdcvg kb import`), for the writer lock's holder line."""
    import click

    context = click.get_current_context(silent=True)
    return context.command_path if context is not None else "kdcvg"


@contextmanager
def writer_lock(config: Settings) -> Iterator[None]:
    """Hold the store's writer lock (refused with one line while the app or another writer runs); private file modes."""
    from kb import store_lock

    try:
        lock = store_lock.acquire(config, command_name())
    except store_lock.StoreBusyError as exc:
        fail(str(exc), 2)
    previous = os.umask(store_lock.PRIVATE_UMASK)
    try:
        store_lock.make_private(config)
        yield
    finally:
        os.umask(previous)
        if lock is not None:
            lock.release()


@contextmanager
def opened_store(read_only: bool = False, *, migrated: bool = True) -> Iterator[Any]:
    """The configured store; with `migrated`, refuses a store whose schema is not up to date.

    A writable store is opened under the writer lock: refused while the curation app runs on it.
    """
    from kb import migrate
    from kb.backends import open_store

    config = settings()
    with nullcontext() if read_only else writer_lock(config), handled_errors(), open_store(config, read_only=read_only) as store:
        if migrated:
            migrate.ensure_up_to_date(store)
        yield store


