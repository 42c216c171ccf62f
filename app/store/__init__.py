"""SQLite access: every SQL statement of the service lives in this package."""
