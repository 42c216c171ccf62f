"""Benchmarks of the SOVD command service (``python -m bench``): each starts the real server and
measures it against a ceiling measured in the same run (pipeline, load, tracing, tls, console)."""
