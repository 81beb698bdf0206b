"""What text from outside may be before it is used: a whole number in ASCII digits.

`str.isdigit()` is true for '²' and '¹²³' (and `int()` then raises), and `int()` accepts '١٢'
(Arabic-Indic digits), '+1', ' 1 ' and '1_000': none of them is a number a platform, a page or a
link sends. One check, used wherever request or payload text becomes an int.
"""

from __future__ import annotations

_ASCII_DIGITS = frozenset("0123456789")


def whole_number(raw: object, max_digits: int) -> int | None:
    """`raw` as an int when it is a str of 1 to `max_digits` ASCII digits; None otherwise."""
    if not isinstance(raw, str) or not 0 < len(raw) <= max_digits or not set(raw) <= _ASCII_DIGITS:
        return None
    return int(raw)
