"""MKR: knowledge-referenced video generation (issue 4; not built yet)."""
