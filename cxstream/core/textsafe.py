"""Customer text made safe for the places notifications put it: e-mail headers, e-mail
addresses, Slack mrkdwn and length-limited fields.

Alerts carry text customers or upstream systems wrote (ids, comments, owner addresses); none
of it may change the structure of what it is placed in. Pure: no I/O.
"""

from __future__ import annotations

import re

#: Control characters (C0, DEL, C1: Unicode's Cc) and the line and paragraph separators (Zl,
#: Zp), as the body of a regex character class: what one line of customer text may not hold
#: where cxstream places it. Every character `str.splitlines()` breaks lines at is among
#: them, so an e-mail header without them cannot make `email.message.EmailMessage` raise.
CONTROL = "\x00-\x1f\x7f-\x9f\u2028\u2029"
_CONTROL = re.compile(f"[{CONTROL}]")
ELLIPSIS = "…"

# An addr-spec without quoting, comments or display names: what a routing file or a
# customer record should hold. Anything else is refused rather than interpreted.
_ADDRESS = re.compile(r"[^\s@<>()\[\],;:\"\\]+@[^\s@<>()\[\],;:\"\\]+\.[^\s@<>()\[\],;:\"\\]+")
_VISIBLE_ASCII = re.compile(r"[\x21-\x7e]+")


def header_text(value: object, limit: int = 200) -> str:
    """`value` as one line of header text, never longer than `limit` characters: every
    control character and line or paragraph separator becomes a space (so the text can never
    start a new header), runs of spaces shrink to one, and text over the limit is cut with an
    ellipsis."""
    return clip(" ".join(_CONTROL.sub(" ", str(value)).split()), limit)


def valid_address(value: object) -> bool:
    """Whether `value` is a plain e-mail address (`local@domain.tld`) holding no whitespace,
    control character, line separator or address syntax (`<>()[],;:"\\`): the only form
    cxstream puts in a `To` or `From` header or gives to the SMTP server."""
    if not isinstance(value, str) or len(value) > 254:
        return False
    return _ADDRESS.fullmatch(value) is not None and _CONTROL.search(value) is None


def safe_token(value: object, limit: int = 128) -> bool:
    """Whether `value` is a non-empty string of at most `limit` visible ASCII characters: what
    an alert id must be to go into HTTP headers (`webhook-id`), a Message-ID and logs."""
    return isinstance(value, str) and 0 < len(value) <= limit and \
        _VISIBLE_ASCII.fullmatch(value) is not None


def mrkdwn(value: object) -> str:
    """`value` as Slack mrkdwn text that Slack shows literally: `&`, `<` and `>` escaped as
    Slack requires, so customer text can never form a mention (`<!channel>`), a link or a
    user reference."""
    return str(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def clip(text: str, limit: int) -> str:
    """`text` cut to at most `limit` characters, the last one an ellipsis when it was cut.
    A cut never splits an escape (`&amp;`, `&lt;`, `&gt;`) made by `mrkdwn`."""
    if len(text) <= limit:
        return text
    cut = text[:max(limit - 1, 0)]
    amp = cut.rfind("&", max(len(cut) - 4, 0))
    if amp >= 0 and ";" not in cut[amp:]:
        cut = cut[:amp]
    return cut + ELLIPSIS if limit > 0 else ""
