"""The JSON API for systems (bearer tokens only)."""
