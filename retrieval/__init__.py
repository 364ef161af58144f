"""SAR: semantic-aware retrieval of creative clips for selling points over the ACKB."""

import warnings

# torch-geometric still calls torch.jit.script at import; the deprecation notice is noise for our users.
warnings.filterwarnings("ignore", message=r"`torch\.jit\.script` is deprecated", category=FutureWarning)
