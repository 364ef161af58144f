"""torch-geometric, imported in one place.

torch-geometric still calls `torch.jit.script` at import, and torch announces that as deprecated;
the notice is noise for our users, so it is silenced for that import only (not process-wide).
"""

import warnings

import torch  # noqa: F401 - before torch_geometric, as retrieval/index.py explains

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=r"`torch\.jit\.script` is deprecated", category=FutureWarning)
    from torch_geometric.data import HeteroData
    from torch_geometric.nn import GATv2Conv, HeteroConv

__all__ = ["GATv2Conv", "HeteroConv", "HeteroData"]
