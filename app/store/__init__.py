"""SQLite access, every SQL statement of the service: database (connection, migrations), one
store per table group (users, service_accounts, commands, vehicles, audit), rows and health."""
