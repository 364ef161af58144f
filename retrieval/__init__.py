"""SAR: semantic-aware retrieval over the ACKB (issue 3; not built yet)."""
