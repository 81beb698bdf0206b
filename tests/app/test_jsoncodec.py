"""app/jsoncodec.py answers exactly as the standard library would, wherever orjson would not."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app import jsoncodec

# Values the standard library writes: integers of any size, any text (lone surrogates included),
# any float (NaN and the infinities included), nested.
scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text()
values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4), max_leaves=20
)


def _same(a: Any, b: Any) -> bool:
    """Equal, with NaN equal to itself, and of the same types (1 is not 1.0 here)."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return bool(a == b)


@given(values)
def test_loads_reads_what_the_standard_library_reads(value: Any) -> None:
    text = json.dumps(value)
    assert _same(jsoncodec.loads(text), json.loads(text))
    assert _same(jsoncodec.loads(text.encode("utf-8", "surrogatepass")), json.loads(text))


@given(values)
def test_dumps_writes_what_reads_back_the_same(value: Any) -> None:
    text = jsoncodec.dumps(value)
    if not any(word in json.dumps(value) for word in ("NaN", "Infinity")):  # not JSON: orjson writes null
        assert _same(json.loads(text), value)
    assert _same(jsoncodec.loads(jsoncodec.dumps(value, sort_keys=True)), json.loads(jsoncodec.dumps(value)))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (b'{"id": 123456789012345678901234567890}', {"id": 123456789012345678901234567890}),  # not a float
        (b'{"id": -9223372036854775809}', {"id": -9223372036854775809}),
        (b'["\\ud800"]', ["\ud800"]),
        ('{"note": "caf\u00e9"}'.encode("utf-16"), {"note": "café"}),
    ],
)
def test_what_orjson_would_read_otherwise(text: bytes, expected: Any) -> None:
    assert _same(jsoncodec.loads(text), expected)


def test_bad_json_raises_the_standard_error() -> None:
    with pytest.raises(json.JSONDecodeError):
        jsoncodec.loads(b'{"id": 1,}')
    with pytest.raises(UnicodeDecodeError):  # what json.loads raises for bytes it cannot decode
        jsoncodec.loads(b"\xff\xfe{")
    assert jsoncodec.dumps({1: 2, "b": 2**70}) == '{"1":2,"b":1180591620717411303424}'
