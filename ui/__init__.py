"""The annotators' Streamlit curation app (issue 5): `kdcvg ui`; see docs/ui.md."""
