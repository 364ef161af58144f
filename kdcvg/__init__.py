"""KD-CVG: knowledge-driven creative video generation.

This package is the foundation every layer may import: the settings (`kdcvg.config`) and the one
family of errors (`kdcvg.errors`). It imports nothing of the project's own. The layers above it
import one way: `kb` <- `retrieval` <- `generation` <- the command line (`cli`) and the app (`ui`).
"""

__version__ = "0.1.0"
