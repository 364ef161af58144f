"""The annotators' Streamlit curation app: `kdcvg ui`; see docs/ui.md."""
