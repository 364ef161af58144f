"""A throwaway, demo-like data directory for trying the app, for its tests and for the screenshots.

`build_sandbox(root)` runs the real commands on a small slice of the demo (`kdcvg kb demo
--products ... --clips-per-product ...`, `kdcvg retrieval train`), points the Generate page at the
shipped demo backbone (`generation/demo_model`, a tiny model trained on the demo clips: blurry
64x64 videos) and adds one user per role with known passwords. Never point it at a real data directory.

    python -m ui.sandbox /tmp/kdcvg-sandbox     # then: eval "$(python -m ui.sandbox --env /tmp/kdcvg-sandbox)"; kdcvg ui
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from generation import DEMO_MODEL_DIR
from ui.auth import add_user

PRODUCTS = ("thermopeak-insulated-bottle", "airbeat-wireless-earbuds")
# username -> (password, roles, display name); known passwords: sandbox only
USERS: dict[str, tuple[str, list[str], str]] = {
    "ann": ("ann-sandbox-pw", ["annotator"], "Ann Notator"),
    "rev": ("rev-sandbox-pw", ["reviewer"], "Rey Viewer"),
    "ana": ("ana-sandbox-pw", ["analyst"], "Ana Lyst"),
}


def sandbox_env(root: Path) -> dict[str, str]:
    """The environment variables that point KD-CVG at the sandbox under `root`."""
    return {
        "KDCVG_DATA": str(root / "data"),
        "KDCVG_UI_USERS": str(root / "data" / "ui" / "users.yaml"),
        "KDCVG_GENERATION_MODEL": str(DEMO_MODEL_DIR),  # read only: generation never writes into it
        "XDG_CONFIG_HOME": str(root / "config"),  # no personal config.toml leaks in
    }


def build_sandbox(root: Path, *, products: tuple[str, ...] = PRODUCTS, clips_per_product: int = 4, train: bool = True) -> dict[str, str]:
    """Build the sandbox under `root` (must not hold one yet) and return its environment variables."""
    env = sandbox_env(root)
    if Path(env["KDCVG_DATA"]).exists():
        raise FileExistsError(f"{env['KDCVG_DATA']} exists: the sandbox is built into a fresh directory")
    full = {**{k: v for k, v in os.environ.items() if k != "KDCVG_CONFIG"}, **env}
    commands = [["kb", "demo", "--products", ",".join(products), "--clips-per-product", str(clips_per_product)]]
    if train:
        commands.append(["retrieval", "train", "--epochs", "5"])
    for args in commands:
        done = subprocess.run([sys.executable, "-m", "cli.main", *args], env=full, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"kdcvg {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    for username, (password, roles, name) in USERS.items():
        add_user(Path(env["KDCVG_UI_USERS"]), username, password, roles, name)
    return env


def template_dir(default: Path) -> Path:
    """Where tests build their shared sandbox: $KDCVG_TEST_UI_SANDBOX (kept between runs) or `default`."""
    kept = os.environ.get("KDCVG_TEST_UI_SANDBOX")
    return Path(kept) if kept else default


def copied_sandbox(template: Path, target: Path) -> dict[str, str]:
    """A private copy at `target` of the sandbox at `template`, built there first if it is not yet (tests share one build)."""
    marker = template / ".built"
    if not marker.exists():
        if template.exists():
            shutil.rmtree(template)
        build_sandbox(template)
        marker.touch()
    shutil.copytree(template, target, ignore=shutil.ignore_patterns(".built"))
    return sandbox_env(target)


def main() -> None:
    """Build a sandbox, or with --env print the `export` lines for an existing one."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("--env", action="store_true", help="only print export lines for the sandbox at ROOT")
    args = parser.parse_args()
    root = args.root.resolve()
    env = sandbox_env(root) if args.env else build_sandbox(root)
    print("\n".join(f"export {name}={shlex.quote(value)}" for name, value in env.items()))
    if not args.env:
        print("# users: " + ", ".join(f"{u}/{p} ({', '.join(r)})" for u, (p, r, _) in USERS.items()), file=sys.stderr)


if __name__ == "__main__":
    main()
