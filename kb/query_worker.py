"""Analysts' queries run in a separate, limited process, so a runaway or crashing query kills only it.

`run_analyst_query` is the one path of `kdcvg cypher` and the app's console: it checks the text
with the allow-list guard (kb.readonly), starts `python -m kb.query_worker` and sends it the request
as JSON on stdin. The worker caps its own address space (RLIMIT_AS: `query_memory_mb` plus the
store file's mapping) and CPU time (RLIMIT_CPU), opens the store read-only (Ladybug with a capped
buffer pool; Neo4j in READ access mode), writes `ready`, runs the query under the database's own
timeout and writes the result as one JSON line. The parent kills it when it runs past the timeout
(plus a short grace for the database to interrupt itself) and reports any end in one line.
"""

from __future__ import annotations

import json
import math
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

from kb.store import QueryResult, QueryTimeoutError, ReadOnlyError, StoreError
from kdcvg.config import Settings

STARTUP_LIMIT_S = 60.0  # starting Python and opening the store, before the query's clock starts
KILL_GRACE_S = 2.0  # past the timeout, before the kill: the database usually interrupts itself first
EXIT_LIMIT_S = 10.0  # after the answer (or a kill), for the worker to exit
STARTUP_CPU_S = 30  # CPU seconds allowed on top of timeout x cores (RLIMIT_CPU is only the backstop)
READY = b"ready\n"
_PROJECT_ROOT = Path(__file__).resolve().parents[1]
_MEMORY_SIGNS = ("bad_alloc", "buffer pool is full", "Mmap for size", "MemoryError", "Cannot allocate memory")


class QueryWorkerError(StoreError):
    """The query worker ended without an answer: it crashed, ran out of memory or of CPU time."""


class QueryMemoryError(QueryWorkerError):
    """The query needed more memory than `query_memory_mb` allows."""


def run_analyst_query(settings: Settings, text: str, params: dict[str, Any] | None, timeout_s: float) -> QueryResult:
    """Check `text` with the read-only guard, run it in a limited worker process, return its table."""
    from kb.readonly import check_read_only

    check_read_only(text)
    request = {
        "settings": settings.model_dump(mode="json"),
        "text": text,
        "params": params or {},
        "timeout_s": timeout_s,
    }
    env = dict(os.environ, MALLOC_ARENA_MAX="2")  # few malloc arenas: the address-space cap then measures real use
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_PROJECT_ROOT), env.get("PYTHONPATH")]))
    with tempfile.TemporaryFile() as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "kb.query_worker"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, env=env
        )
        try:
            answer, stopped = _converse(process, json.dumps(request).encode(), timeout_s)
        finally:
            try:
                process.wait(timeout=EXIT_LIMIT_S)  # the answer is in: let the worker exit by itself
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            assert process.stdout is not None
            process.stdout.close()
        stderr.seek(0)
        diagnostics = stderr.read().decode("utf-8", "replace")
    if stopped:
        raise QueryTimeoutError(_timeout_message(timeout_s))
    return _result(answer, process.returncode, diagnostics, settings, timeout_s)


def _converse(process: subprocess.Popen[bytes], request: bytes, timeout_s: float) -> tuple[bytes, bool]:
    """Send the request and read the answer; (answer bytes, whether the worker was killed for the timeout)."""
    assert process.stdin is not None and process.stdout is not None
    try:
        process.stdin.write(request)
        process.stdin.close()
    except BrokenPipeError:
        pass  # the worker died at once; its exit status says why
    received = bytearray()
    started = False
    deadline = time.monotonic() + STARTUP_LIMIT_S
    fd = process.stdout.fileno()
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            process.kill()
            if not started:
                raise QueryWorkerError(f"the query worker did not open the store within {STARTUP_LIMIT_S:g} s")
            return bytes(received), True
        readable, _, _ = select.select([fd], [], [], remaining)
        if not readable:
            continue
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            return bytes(received), False
        received += chunk
        if not started and received.startswith(READY):
            started = True
            deadline = time.monotonic() + timeout_s + KILL_GRACE_S


def _result(answer: bytes, returncode: int, diagnostics: str, settings: Settings, timeout_s: float) -> QueryResult:
    """The worker's answer as a QueryResult, or the one-line error that says how it ended."""
    body = answer.removeprefix(READY)
    if returncode == 0 and body.strip():
        try:
            message = json.loads(body)
        except ValueError:
            raise QueryWorkerError("the query worker's answer could not be read") from None
        if message.get("error") == "timeout":
            raise QueryTimeoutError(_timeout_message(timeout_s))
        if "error" in message:
            raise _ERRORS.get(message["error"], StoreError)(message["message"])
        return QueryResult(message["columns"], message["rows"])
    if any(sign in diagnostics for sign in _MEMORY_SIGNS):
        raise QueryMemoryError(_memory_message(settings.query_memory_mb))
    if returncode < 0:
        number = -returncode
        name = signal.Signals(number).name if number in signal.Signals._value2member_map_ else "unknown"
        if number == signal.SIGXCPU:
            raise QueryWorkerError("the query used up its CPU time and was stopped")
        raise QueryWorkerError(f"the query worker crashed (signal {number}, {name}); nothing was written")
    last = diagnostics.strip().splitlines()[-1] if diagnostics.strip() else "no message"
    raise QueryWorkerError(f"the query worker failed (exit status {returncode}): {last[:300]}")


def _timeout_message(timeout_s: float) -> str:
    return f"the query ran past its {timeout_s:g} s timeout and was stopped"


def _memory_message(memory_mb: int) -> str:
    return f"the query needed more than {memory_mb} MB (setting query_memory_mb) and was stopped"


_ERRORS: dict[str, type[StoreError]] = {
    "timeout": QueryTimeoutError,
    "memory": QueryMemoryError,
    "read_only": ReadOnlyError,
    "store": StoreError,
}


# --- the worker process ---


def _max_db_bytes(path: Path) -> int:
    """Ladybug's address-space reservation for the file: a power of two, at least 64 MB and twice the file."""
    size = max(64 << 20, 2 * (path.stat().st_size if path.exists() else 0))
    return 1 << math.ceil(math.log2(size))


def _limit(settings: Settings, timeout_s: float) -> int:
    """Cap this process's address space and CPU time; return the buffer pool Ladybug may use (bytes)."""
    import resource

    memory = settings.query_memory_mb << 20
    reservation = _max_db_bytes(settings.ladybug_path) if settings.store_backend == "ladybug" else 0
    resource.setrlimit(resource.RLIMIT_AS, (memory + reservation, memory + reservation))
    cpu = min(math.ceil(timeout_s * (os.cpu_count() or 1)) + STARTUP_CPU_S, 1 << 31)
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 5))
    return memory // 2


def _die_with_parent() -> None:
    """Ask Linux to kill this worker if the process that started it dies (no orphaned query)."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _json_value(value: Any) -> Any:
    """A value JSON cannot hold as is: Ladybug's sums (Decimal) as numbers, anything else as text."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return str(value)


def _answer(out: IO[str], message: dict[str, Any]) -> None:
    out.write(json.dumps(message, ensure_ascii=False, default=_json_value) + "\n")
    out.flush()


def _error(exc: BaseException, memory_mb: int) -> dict[str, str]:
    """An exception as {error kind, one-line message}."""
    text = str(exc)
    if isinstance(exc, MemoryError) or any(sign in text for sign in _MEMORY_SIGNS):
        return {"error": "memory", "message": _memory_message(memory_mb)}
    if isinstance(exc, QueryTimeoutError):
        return {"error": "timeout", "message": text}
    if isinstance(exc, ReadOnlyError):
        return {"error": "read_only", "message": text}
    return {"error": "store", "message": text}


def main() -> None:
    """The worker: read the request, limit itself, open the store read-only, run, answer in JSON."""
    _die_with_parent()
    request = json.loads(sys.stdin.buffer.read())
    out = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)  # whatever native code prints goes to stderr, never into the answer
    settings = Settings.model_validate(request["settings"])
    timeout_s = float(request["timeout_s"])
    buffer_pool = _limit(settings, timeout_s)
    try:
        if settings.store_backend == "ladybug":
            from kb.ladybug_store import LadybugStore

            store: Any = LadybugStore(
                settings.ladybug_path,
                read_only=True,
                buffer_pool_bytes=buffer_pool,
                max_db_bytes=_max_db_bytes(settings.ladybug_path),
            )
        else:
            from kb.backends import open_store

            store = open_store(settings, read_only=True)
    except (StoreError, MemoryError) as exc:
        _answer(out, _error(exc, settings.query_memory_mb))
        return
    out.write(READY.decode())
    out.flush()
    try:
        result = store.query(request["text"], request["params"], timeout_s=timeout_s)
    except (StoreError, MemoryError) as exc:
        _answer(out, _error(exc, settings.query_memory_mb))
        return
    finally:
        store.close()
    _answer(out, {"columns": result.columns, "rows": result.rows})


if __name__ == "__main__":
    main()
