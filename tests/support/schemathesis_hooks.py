"""Schemathesis hooks for tests/test_fuzz.py (loaded through SCHEMATHESIS_HOOKS): a PDX
upload (``application/zip``) is bytes, sent as schemathesis sends octet-stream."""

import schemathesis

schemathesis.serializer.alias("application/zip", "application/octet-stream")
