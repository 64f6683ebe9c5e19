"""Fingerprints of what a stage's output was built from (settings, input hashes, file names), so a rerun on
unchanged inputs finds its output current. A key is any JSON-serialisable value; its canonical JSON (sorted
keys) is hashed, so equal keys give equal fingerprints in every process and run. Contents of input files
are fingerprinted by `io.files.content_hash`."""

from __future__ import annotations

import json

import xxhash


def _canonical(key) -> bytes:
    return json.dumps(key, sort_keys=True).encode()


def fingerprint(key) -> str:
    """xxh3-128 (32 hex digits) of the key: stored next to the output it describes."""
    return xxhash.xxh3_128_hexdigest(_canonical(key))


def short_fingerprint(key) -> str:
    """12 hex digits (of xxh3-64) of the key: for names people read, such as run ids."""
    return xxhash.xxh3_64_hexdigest(_canonical(key))[:12]
