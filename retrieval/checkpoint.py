"""Versioned SAR checkpoints: `root/v0001`, `v0002`, … plus a `latest` file naming the newest.

Each version holds model.pt (state_dict, loaded with weights_only=True), config.json (SarConfig
and the model's architecture spec), metrics.json and meta.json (data hash, created_at, training
selling points), and judgements.json when known (the judged relationships the model learnt from,
so feedback can tell what annotators judged since), written to a temporary folder and renamed so a
crash leaves no half version.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kb.timestamps import utc_now
from kdcvg.errors import MissingFileError

if TYPE_CHECKING:  # torch and torch-geometric load only to save or load a model (slow imports)
    from retrieval.model import SarGAT
    from retrieval.train import SarConfig

FILES = ("model.pt", "config.json", "metrics.json", "meta.json")
JUDGEMENTS = "judgements.json"  # optional: older versions have none
VERSION = re.compile(r"^v(\d{4,})$")


def _next_version(root: Path) -> str:
    numbers = [int(m.group(1)) for p in root.iterdir() if (m := VERSION.match(p.name))] if root.is_dir() else []
    return f"v{max(numbers, default=0) + 1:04d}"


def save_checkpoint(
    directory: Path,
    model: SarGAT,
    config: SarConfig,
    data_hash: str,
    metrics: dict[str, Any],
    *,
    train_selling_points: list[str] | None = None,
    extra: dict[str, Any] | None = None,
    judgements: list[list[str]] | None = None,
) -> Path:
    """Write a new version folder under `directory`, point `latest` at it, return its path."""
    import torch

    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    name = _next_version(root)
    staging = root / f".{name}.partial-{os.getpid()}"
    staging.mkdir()
    torch.save(model.state_dict(), staging / "model.pt")
    (staging / "config.json").write_text(json.dumps({"sar": config.to_dict(), "model": model.spec}, indent=2), encoding="utf-8")
    (staging / "metrics.json").write_text(json.dumps(metrics, indent=2, default=float), encoding="utf-8")
    meta = {
        "version": name,
        "data_hash": data_hash,
        "created_at": utc_now(),
        "train_selling_points": train_selling_points,
        **(extra or {}),
    }
    (staging / "meta.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")
    if judgements is not None:
        (staging / JUDGEMENTS).write_text(json.dumps(judgements), encoding="utf-8")
    final = root / name
    os.replace(staging, final)
    latest = root / f".latest.partial-{os.getpid()}"
    latest.write_text(name + "\n", encoding="utf-8")
    os.replace(latest, root / "latest")
    return final


def resolve_checkpoint(path_or_root: Path) -> Path:
    """The version folder: `path_or_root` itself, or the one its `latest` file names."""
    path = Path(path_or_root)
    if not path.exists():
        raise MissingFileError(f"no checkpoint at {path}")
    if (path / "latest").is_file():
        path = path / (path / "latest").read_text(encoding="utf-8").strip()
    missing = [f for f in FILES if not (path / f).is_file()]
    if missing:
        raise MissingFileError(f"incomplete checkpoint {path}: missing {', '.join(missing)}")
    return path


def read_meta(path_or_root: Path) -> dict[str, Any]:
    """Meta (with metrics and path) of a version folder or a root, without loading the model."""
    path = resolve_checkpoint(path_or_root)
    meta = json.loads((path / "meta.json").read_text(encoding="utf-8"))
    meta["metrics"] = json.loads((path / "metrics.json").read_text(encoding="utf-8"))
    meta["path"] = str(path)
    return meta


def read_judgements(path_or_root: Path) -> list[list[str]] | None:
    """The judged relationships ([type, from, to, status]) a version learnt from, or None when it did not record them."""
    path = resolve_checkpoint(path_or_root) / JUDGEMENTS
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def load_checkpoint(path_or_root: Path) -> tuple[SarGAT, SarConfig, dict[str, Any]]:
    """(model in eval mode, config, meta incl. metrics and path) of a version folder or a root."""
    import torch

    from retrieval.model import SarGAT
    from retrieval.train import SarConfig

    meta = read_meta(path_or_root)
    path = Path(meta["path"])
    stored = json.loads((path / "config.json").read_text(encoding="utf-8"))
    model = SarGAT.from_spec(stored["model"])
    model.load_state_dict(torch.load(path / "model.pt", map_location="cpu", weights_only=True))
    return model.eval(), SarConfig.from_dict(stored["sar"]), meta
