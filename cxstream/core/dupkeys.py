"""Whether a JSON text repeats a key inside one object, at any depth.

Why it matters: parsers disagree on which copy of a repeated key wins (orjson and Python's
json keep the last one, others the first one or refuse the text), so `{"score": 11,
"score": 7}` means one thing to a producer's validator and another to cxstream. orjson
does not report repeats; `repeats_a_key` decides exactly, after orjson has parsed the text,
without parsing it a second time.

Why counting is exact: every string token of a JSON text is either an object key or a value
(of an object member, of an array, or the whole document). With S the string tokens of the
text, D the keys the parsed objects kept (the sum of their sizes: a repeated key is kept
once) and V the string values they hold, S - V keys were written and D were kept, so a key
was repeated exactly when S > D + V. S is half the number of `"` that delimit strings: in a
valid text every `"` outside a string is a delimiter, and one inside a string is written
`\\"`, i.e. it follows an odd run of backslashes (after an even run, the backslashes escape
each other and the `"` closes the string). Other spellings of a key (`"\\u0061"` for `"a"`)
change none of these counts.

Cost: one count of `"` over the text and a walk of the parsed values (which a decoder that
has checked the fields can mostly skip, `repeats_a_key_of`); escaped quotes are looked for
only when the count alone does not settle the answer.

Pure: no I/O. Never recurses (orjson accepts nesting up to 1024, deeper than Python's
recursion limit).
"""

from __future__ import annotations

import json
from typing import Any, Final

__all__ = ["repeats_a_key", "repeats_a_key_of", "kept_strings", "repeated_key"]

_BACKSLASH: Final = 92
_QUOTE: Final = 34


def repeats_a_key(raw: bytes, doc: Any) -> bool:
    """True when an object anywhere in the JSON text `raw` has the same key more than once.

    `doc` must be what orjson parsed `raw` into (the answer means nothing otherwise).
    Exact, see the module docstring."""
    return repeats_a_key_of(raw, kept_strings(doc))


def repeats_a_key_of(raw: bytes, kept: int) -> bool:
    """`repeats_a_key`, given `kept_strings` of the parsed document (which a caller that has
    checked its fields may know without a walk)."""
    quotes = raw.count(b'"')
    if quotes == 2 * kept:  # quotes = 2S + escaped ones >= 2(D + V): none escaped, no repeat
        return False
    # An int operand: `in` is a memchr (a bytes one costs several times more).
    if _BACKSLASH in raw:
        quotes -= _escaped_quotes(raw)
    return quotes > 2 * kept


def _escaped_quotes(raw: bytes) -> int:
    """How many `"` of `raw` are escaped: those right after an odd run of backslashes.
    Visits each run of backslashes once (found with a memchr)."""
    escaped = 0
    at = raw.find(_BACKSLASH)
    end = len(raw)
    while at >= 0:
        run_end = at + 1
        while run_end < end and raw[run_end] == _BACKSLASH:
            run_end += 1
        if (run_end - at) % 2 == 1 and run_end < end and raw[run_end] == _QUOTE:
            escaped += 1
        at = raw.find(_BACKSLASH, run_end)
    return escaped


def kept_strings(doc: Any) -> int:
    """D + V of the module docstring: the keys of every object in `doc` (parsed JSON) plus
    its string values, at any depth (an explicit stack, no recursion)."""
    count = 0
    stack: list[Any] = [doc]
    while stack:
        node = stack.pop()
        if type(node) is dict:
            count += len(node)
            items: Any = node.values()
        elif type(node) is list:
            items = node
        else:  # the document itself is a scalar
            if type(node) is str:
                count += 1
            continue
        for value in items:
            kind = type(value)
            if kind is str:
                count += 1
            elif kind is dict or kind is list:
                stack.append(value)
    return count


def repeated_key(raw: bytes) -> str | None:
    """The first key found repeated in one object of the JSON text `raw` (inner objects
    are finished first), or None when there is none or Python's json cannot tell (nesting
    past its recursion limit). For the reason of a rejection only: slow, and run once
    `repeats_a_key` has said yes."""
    found: list[str] = []

    def pairs(members: list[tuple[str, Any]]) -> dict[str, Any]:
        seen: set[str] = set()
        for key, _ in members:
            if key in seen and not found:
                found.append(key)
            seen.add(key)
        return {}  # the values are not needed

    try:
        json.loads(raw, object_pairs_hook=pairs)
    except (ValueError, RecursionError):
        return None
    return found[0] if found else None
