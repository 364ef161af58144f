"""The app's page scripts, run by st.navigation from ui/app.py (importing one would run it)."""
