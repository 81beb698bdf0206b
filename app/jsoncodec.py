"""JSON for the hot paths: orjson, with the standard library's exact answer wherever orjson's would
differ.

A worker parses each delivery's body (5 to 15 KB) and writes and reads the JSON columns of the
orders, customers and awards it touches; the standard library took a fifth of its time doing so,
orjson takes a half to a seventh of that. Where orjson answers differently, the standard library
answers instead, so nothing a payload or a stored value means changes:

- `loads`: orjson reads integers beyond 64 bits as floats (silently inexact) and refuses NaN,
  Infinity and lone surrogate escapes. Text with a run of 19 digits or more, or that orjson
  refuses, is read by `json.loads` (which then accepts it, or raises its own JSONDecodeError).
- `dumps`: orjson refuses integers beyond 64 bits, keys that are not strings and lone surrogates:
  those values go to `json.dumps`. It writes UTF-8 rather than \\u escapes, and NaN and the
  infinities as null (the standard library's NaN and Infinity are not JSON: PostgreSQL refuses
  them).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import orjson

# Every digit to "1", every other byte to "0": a run of 19 ones is a run of 19 digits. Two C
# loops over the text (a regular expression scanning for \d{19} took as long as orjson's parse).
_DIGIT_MAP = bytes(ord("1") if chr(i).isdigit() and i < 128 else ord("0") for i in range(256))
_LONG_RUN = b"1" * 19


def loads(data: bytes | bytearray | memoryview | str) -> Any:
    """The value of a JSON text: what `json.loads` returns, faster."""
    raw: bytes | bytearray | None
    if isinstance(data, str):
        try:
            raw = data.encode()
        except UnicodeEncodeError:  # a lone surrogate: not UTF-8, orjson cannot have it
            raw = None
    else:
        raw = data = bytes(data) if isinstance(data, memoryview) else data
    if raw is not None and _LONG_RUN not in raw.translate(_DIGIT_MAP):
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass  # perhaps a NaN or a lone surrogate the standard library accepts: it decides
    return json.loads(data)


def dumps(value: Any, *, sort_keys: bool = False, default: Callable[[Any], Any] | None = None) -> str:
    """Compact JSON text for `value`: keys sorted when asked (a canonical form); `default` as for
    `json.dumps`, called for what JSON has no type for."""
    try:
        return orjson.dumps(value, default=default, option=orjson.OPT_SORT_KEYS if sort_keys else 0).decode()
    except TypeError:
        return json.dumps(value, sort_keys=sort_keys, separators=(",", ":"), default=default)
