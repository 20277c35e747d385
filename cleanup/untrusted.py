"""Untrusted text (task names, server messages) made safe to show and to log.

Whatever a server or a file says is shown escaped: control characters (ANSI escapes
included) become visible ``\\xNN`` / ``\\uNNNN`` escapes, and long text is cut. Console
markup is never interpreted: callers print these strings as plain ``rich.text.Text``
or with ``markup=False``.
"""

from __future__ import annotations

import unicodedata

NAME_LIMIT = 256
"""Task names are cut to this many characters in tables and the audit log."""
MESSAGE_LIMIT = 300
"""Server messages are cut to this many characters."""


def printable(text: str, limit: int | None = MESSAGE_LIMIT) -> str:
    """``text`` with every control or format character escaped, cut to ``limit``."""
    cut = text if limit is None or len(text) <= limit else text[: limit - 1]
    out = []
    for char in cut:
        category = unicodedata.category(char)
        if category[0] == "C" or category in ("Zl", "Zp"):
            code = ord(char)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
        else:
            out.append(char)
    return "".join(out) + ("…" if cut is not text else "")


def cut_name(name: str) -> tuple[str, bool]:
    """A task name cut to ``NAME_LIMIT`` characters, and whether it was cut."""
    if len(name) <= NAME_LIMIT:
        return name, False
    return name[:NAME_LIMIT], True
