"""The annotators' Streamlit app (issue 5; not built yet)."""
