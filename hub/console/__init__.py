"""The web ops console (`hub console`): see hub/console/app.py."""
