"""KD-CVG: knowledge-driven creative video generation. This package holds the CLI and configuration."""

__version__ = "0.1.0"
