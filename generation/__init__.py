"""MKR: knowledge-referenced video generation (backbones, priors, generate(), batch, eval, demo backbone)."""

from pathlib import Path

# The shipped demo backbone (see generation.demo_backbone); defined here so light modules can name it without torch.
DEMO_MODEL_DIR = Path(__file__).resolve().parent / "demo_model"
