"""The database, every SQL statement of the service: engine (the seam, group commit),
database (SQLite, the default) or postgres (PostgreSQL, SOVD_DATABASE_URL), dialects (what
their SQL spells differently), migrations, one store per table group (users,
service_accounts, commands, vehicles, audit), rows and health."""
