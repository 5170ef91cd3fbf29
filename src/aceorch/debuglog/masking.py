"""Masking secrets in debug records: values of secret-looking keys, and known secret values inside strings.

A key is secret-looking when its name contains KEY, TOKEN, PASSWORD or SECRET, except names that carry no
secret (an AceStream content key is what a stream *is*). The decisions are cached per key name, since
callers log the same few keys over and over.
"""

from __future__ import annotations

from typing import Any

__all__ = ["MIN_SUBSTRING_SECRET", "secret_name_cache", "is_secret_name", "maskable", "mask_names", "mask_values"]

_SECRET_MARKERS = ("KEY", "TOKEN", "PASSWORD", "SECRET")
# Names that contain KEY but carry no secret: an AceStream content key is what a stream *is*.
_NOT_SECRET = frozenset({"KEY", "KEY_TYPE", "STREAM_KEY", "CONTENT_KEY", "INFOHASH", "KEYS", "MONKEY"})
#: Key name -> whether it is secret-looking (bounded: names beyond the first 4096 are not cached).
secret_name_cache: dict[str, bool] = {}


def is_secret_name(name: object) -> bool:
    """Whether a key's value must be masked (only strings can be secret-looking names)."""
    if not isinstance(name, str):
        return False
    hit = secret_name_cache.get(name)
    if hit is None:
        upper = name.upper()
        hit = upper not in _NOT_SECRET and not upper.endswith("KEY_TYPE")
        hit = hit and any(marker in upper for marker in _SECRET_MARKERS)
        if len(secret_name_cache) < 4096:
            secret_name_cache[name] = hit
    return hit


#: The shortest secret that is also masked inside longer strings.
MIN_SUBSTRING_SECRET = 6


def maskable(value: object) -> bool:
    """Whether a value under a secret-looking key carries anything to hide (not None, "" or a boolean)."""
    return value is not None and value != "" and not isinstance(value, bool)


def mask_names(obj: Any) -> Any:
    """A copy of a nested dict/list with the values of secret-looking keys replaced by ``***``."""
    if isinstance(obj, dict):
        return {k: ("***" if is_secret_name(k) and maskable(v) else mask_names(v)) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [mask_names(v) for v in obj]
    return obj


def mask_values(obj: Any, secrets: tuple[str, ...]) -> Any:
    """A copy of ``obj`` with every occurrence of a secret value inside strings replaced by ``***``.

    Secrets shorter than :data:`MIN_SUBSTRING_SECRET` are masked only where a whole string equals them: replacing
    every ``k`` of a one-letter key would shred the records while protecting nothing.
    """
    if isinstance(obj, str):
        for secret in secrets:
            if obj == secret:
                return "***"
            if len(secret) >= MIN_SUBSTRING_SECRET and secret in obj:
                obj = obj.replace(secret, "***")
        return obj
    if isinstance(obj, dict):
        return {mask_values(k, secrets): mask_values(v, secrets) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [mask_values(v, secrets) for v in obj]
    return obj

