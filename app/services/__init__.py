"""The service's rules: auth, vehicles, commands, audit. No HTTP types in here."""
