"""The service's rules, no HTTP types: auth (tokens, passwords, users), vehicles, commands and
their pipeline, locks, audit, retention, ECU descriptions and variants; registry holds them all."""
