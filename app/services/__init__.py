"""The service's rules, no HTTP types: auth (tokens, passwords, users), vehicles and their inputs,
commands and their pipeline, locks, audit, retention, ECU descriptions, variants; registry."""
