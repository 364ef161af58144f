"""Start, reuse and stop a local Neo4j 5 server, no Docker: Neo4j Community from Maven Central.

`neo4j-server/` holds a pom.xml (the Neo4j version) and one launcher class. The first start resolves
the pom's class path with Maven (downloading into ~/.m2 once, then offline with `mvn -o`) and
compiles the launcher with javac; both are cached under a key made of those files' hashes, so a
changed pom or launcher rebuilds and an unchanged one is reused. The server listens for Bolt on
127.0.0.1 only, with auth enabled; its data, logs, password and pid file live in one home folder
(`$KDCVG_DATA/neo4j` for `make neo4j`, a temporary folder for the test session).

    python -m kb.neo4j_server start   # prints `export NEO4J_URI=... NEO4J_USER=... NEO4J_PASSWORD=...`
    python -m kb.neo4j_server stop
    python -m kb.neo4j_server build   # only download and build the launcher (done before the tests)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from kb.processes import process_alive
from kdcvg.errors import UnavailableError

PROJECT_DIR = Path(__file__).resolve().parent.parent / "neo4j-server"
LAUNCHER_SOURCE = PROJECT_DIR / "src" / "main" / "java" / "kdcvg" / "Neo4jLauncher.java"
LAUNCHER_CLASS = "kdcvg.Neo4jLauncher"
READY_MARK = "KDCVG-NEO4J-READY"
USER = "neo4j"
DEFAULT_PORT = 7687
START_TIMEOUT_S = 240.0
STOP_TIMEOUT_S = 60.0
# Modest by default: the machine runs torch tests beside it (the page cache is 256 MiB, set by the launcher).
HEAP = os.environ.get("KDCVG_NEO4J_HEAP", "1g")


class Neo4jServerError(UnavailableError):
    """The local Neo4j server could not be built, started or stopped; the message says why."""


@dataclass(frozen=True)
class Neo4jServer:
    """A running local server: its process id, Bolt URI and credentials."""

    pid: int
    port: int
    password: str
    home: Path
    user: str = USER

    @property
    def uri(self) -> str:
        return f"bolt://127.0.0.1:{self.port}"

    def exports(self) -> str:
        """Shell lines a user can paste or `eval` to point KD-CVG at this server."""
        return f"export NEO4J_URI={self.uri} NEO4J_USER={self.user} NEO4J_PASSWORD={self.password}"


def _say(message: str) -> None:
    """Progress for people, on stderr (stdout carries only the export lines)."""
    print(f"neo4j: {message}", file=sys.stderr, flush=True)


def launcher_cache_dir() -> Path:
    """Where built launchers live: one folder per hash of the pom and launcher source."""
    return Path(os.environ.get("KDCVG_NEO4J_LAUNCHER_CACHE") or platformdirs.user_cache_dir("kdcvg")) / "neo4j-launcher"


def _launcher_key() -> str:
    digest = hashlib.sha256()
    for path in (PROJECT_DIR / "pom.xml", LAUNCHER_SOURCE):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise Neo4jServerError(f"`{name}` is not installed: the local Neo4j server needs Java 17+ and Maven (apt-get install openjdk-17-jdk-headless maven)")
    return found


def java_available() -> str | None:
    """None when java, javac and mvn are all on PATH, else the reason the server cannot be built."""
    missing = [name for name in ("java", "javac", "mvn") if shutil.which(name) is None]
    return f"{', '.join(missing)} not on PATH (the local Neo4j server needs Java 17+ and Maven)" if missing else None


def build_launcher() -> str:
    """The launcher's class path, building it once per pom/launcher version (Maven offline when cached)."""
    target = launcher_cache_dir() / _launcher_key()
    classpath_file = target / "classpath.txt"
    if classpath_file.is_file():
        return f"{target / 'classes'}{os.pathsep}{classpath_file.read_text().strip()}"
    mvn, javac = _tool("mvn"), _tool("javac")
    staging = target.with_name(f"{target.name}.partial-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    (staging / "classes").mkdir(parents=True)
    resolve = [mvn, "-B", "-q", "-ntp", "-f", str(PROJECT_DIR / "pom.xml"), "dependency:build-classpath", f"-Dmdep.outputFile={staging / 'classpath.txt'}"]
    started = time.perf_counter()
    offline = subprocess.run([*resolve, "-o"], capture_output=True, text=True)
    if offline.returncode != 0:
        _say("downloading Neo4j Community and its libraries from Maven Central into ~/.m2 (once, about 210 MB)")
        online = subprocess.run(resolve, capture_output=True, text=True)
        if online.returncode != 0:
            shutil.rmtree(staging, ignore_errors=True)
            raise Neo4jServerError(f"Maven could not resolve {PROJECT_DIR / 'pom.xml'}:\n{_tail(online.stdout + online.stderr)}")
        _say(f"downloaded in {time.perf_counter() - started:.0f} s")
    classpath = (staging / "classpath.txt").read_text().strip()
    compiled = subprocess.run([javac, "-d", str(staging / "classes"), "-cp", classpath, str(LAUNCHER_SOURCE)], capture_output=True, text=True)
    if compiled.returncode != 0:
        shutil.rmtree(staging, ignore_errors=True)
        raise Neo4jServerError(f"javac could not compile {LAUNCHER_SOURCE}:\n{_tail(compiled.stderr)}")
    shutil.rmtree(target, ignore_errors=True)
    os.replace(staging, target)
    return f"{target / 'classes'}{os.pathsep}{classpath}"


def _tail(text: str, lines: int = 20) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _password(home: Path) -> str:
    """The server's password, made once and kept in HOME/password (readable by the owner only)."""
    path = home / "password"
    if path.is_file():
        return path.read_text().strip()
    password = secrets.token_urlsafe(18)
    home.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(password + "\n")
    return password


def _alive(pid: int) -> bool:
    """True while `pid` is a live launcher process (a recycled pid of another program is not ours)."""
    try:
        if LAUNCHER_CLASS.encode() not in Path(f"/proc/{pid}/cmdline").read_bytes():
            return False
    except OSError:
        return False
    if not process_alive(pid):
        return False
    try:  # a zombie child of ours has exited
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return True


def bolt_answers(server: Neo4jServer) -> bool:
    """True when the server accepts a login over Bolt and runs a query."""
    import neo4j

    try:
        with neo4j.GraphDatabase.driver(server.uri, auth=(server.user, server.password), connection_timeout=5) as driver:
            driver.execute_query("RETURN 1", database_="neo4j")
        return True
    except Exception:
        return False


def _pid_file(home: Path) -> Path:
    return home / "server.json"


def running(home: Path) -> Neo4jServer | None:
    """The server recorded in HOME's pid file, if its process lives and Bolt answers."""
    try:
        record = json.loads(_pid_file(home).read_text())
        server = Neo4jServer(pid=int(record["pid"]), port=int(record["port"]), password=_password(home), home=home)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return server if _alive(server.pid) and bolt_answers(server) else None


def start(home: Path, *, port: int | None = None, timeout_s: float = START_TIMEOUT_S) -> Neo4jServer:
    """Start a server with its data under `home` (reusing a running one) and wait until Bolt answers."""
    home = Path(home).resolve()
    existing = running(home)
    if existing is not None:
        return existing
    classpath = build_launcher()
    java = _tool("java")
    password = _password(home)
    if port is None:
        port = DEFAULT_PORT if _port_free(DEFAULT_PORT) else free_port()
    log_path = home / "launcher.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [java, f"-Xmx{HEAP}", "-XX:+UseSerialGC", "-cp", classpath, LAUNCHER_CLASS, str(home), str(port)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "NEO4J_PASSWORD": password},
            start_new_session=True,  # outlives `make neo4j`; a terminal's Ctrl-C does not reach it
        )
    server = Neo4jServer(pid=process.pid, port=port, password=password, home=home)
    _pid_file(home).write_text(json.dumps({"pid": process.pid, "port": port}) + "\n")
    deadline = time.monotonic() + timeout_s
    while READY_MARK not in log_path.read_text(errors="replace"):
        if process.poll() is not None:
            raise Neo4jServerError(f"the Neo4j server exited with code {process.returncode} while starting:\n{_tail(log_path.read_text(errors='replace'))}")
        if time.monotonic() > deadline:
            stop(home)
            raise Neo4jServerError(f"the Neo4j server did not start within {timeout_s:.0f} s:\n{_tail(log_path.read_text(errors='replace'))}")
        time.sleep(0.2)
    if not bolt_answers(server):
        stop(home)
        raise Neo4jServerError(f"the Neo4j server started but Bolt at {server.uri} refused the login:\n{_tail(log_path.read_text(errors='replace'))}")
    return server


def stop(home: Path, *, kill: bool = False) -> bool:
    """Stop HOME's server (SIGTERM: a clean shutdown; `kill`: SIGKILL at once); False when none ran."""
    home = Path(home).resolve()
    try:
        pid = int(json.loads(_pid_file(home).read_text())["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return False
    if not _alive(pid):
        _pid_file(home).unlink(missing_ok=True)
        return False
    os.kill(pid, signal.SIGKILL if kill else signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while _alive(pid):
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + STOP_TIMEOUT_S
        time.sleep(0.1)
        _reap(pid)
    _pid_file(home).unlink(missing_ok=True)
    return True


def _reap(pid: int) -> None:
    """Collect the exit status of a server we started in this process, so it leaves no zombie."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def default_home() -> Path:
    """`$KDCVG_DATA/neo4j` (the data dir from KD-CVG's settings)."""
    from kdcvg.config import load_settings

    return load_settings().data_dir / "neo4j"


def main(argv: list[str] | None = None) -> int:
    """`start` (print export lines), `stop`, `status` of the local server, or `build` its launcher."""
    parser = argparse.ArgumentParser(prog="python -m kb.neo4j_server", description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("start", "stop", "status", "build"))
    parser.add_argument("--home", type=Path, help="server folder (default: $KDCVG_DATA/neo4j)")
    parser.add_argument("--port", type=int, help=f"Bolt port (default: {DEFAULT_PORT} if free, else any free port)")
    args = parser.parse_args(argv)
    home = (args.home or default_home()).resolve()
    try:
        if args.action == "start":
            reused = running(home)
            if reused is None:
                _say(f"starting Neo4j Community in {home}")
                started = time.perf_counter()
                server = start(home, port=args.port)
                _say(f"ready at {server.uri} after {time.perf_counter() - started:.0f} s (stop it with `make neo4j-stop`)")
            else:
                server = reused
                _say(f"already running at {server.uri} (pid {server.pid})")
            print(server.exports())
        elif args.action == "build":
            build_launcher()
            _say(f"launcher ready in {launcher_cache_dir() / _launcher_key()}")
        elif args.action == "stop":
            _say(f"stopped the server in {home}" if stop(home) else f"no server was running in {home}")
        else:
            server = running(home)
            if server is None:
                _say(f"no server running in {home}")
                return 1
            print(server.exports())
    except Neo4jServerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
