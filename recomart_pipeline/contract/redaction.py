"""Credentials inside URLs (``https://user:password@host/…``) never leave the process.

Secret-typed config fields are masked by value (config.PipelineConfig.redact); a password
inside an ordinary URL, such as an ingestion source or an MLflow tracking URI, is not typed
as a secret, and a URL may be printed by code that never saw the config (an exception from
urllib, the circuit breaker's last error). Masking the user-info part of every URL in a
text covers them all, whatever printed it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

REDACTED = "**********"

# scheme://userinfo@ — userinfo stops at the characters that end an authority.
_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.\-]*://)(?P<userinfo>[^\s/?#@\"'<>]+)@")


def strip_url_credentials(text: str) -> str:
    """``text`` with the user-info of every URL in it replaced by the redaction mark."""
    return _USERINFO.sub(lambda m: f"{m['scheme']}{REDACTED}@", text)


def url_credentials(text: str) -> Iterator[str]:
    """The user-info of each URL in ``text``, and its password part, to redact by value."""
    for match in _USERINFO.finditer(text):
        userinfo = match["userinfo"]
        yield userinfo
        _, colon, password = userinfo.partition(":")
        if colon and password:
            yield password
