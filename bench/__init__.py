"""Benchmarks of the SOVD command service: each starts the real server and measures it."""
