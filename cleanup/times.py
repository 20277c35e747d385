"""Time formats, one helper each: policy durations and timestamps, API timestamps, zones, ages.

Works on Python 3.10: timestamps are read with a regex, not 3.11's ``fromisoformat``.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, date, datetime, timedelta, timezone, tzinfo
from fractions import Fraction
from zoneinfo import ZoneInfo

MAX_DURATION_S = 100 * 365 * 86400.0
# format_duration prefers the earlier unit between forms of equal length (7d, not 1w).
_UNIT_MS = {"d": 86_400_000, "w": 604_800_000, "h": 3_600_000, "m": 60_000, "s": 1000, "ms": 1}
_DURATION = re.compile(r"[ \t]*([0-9]{1,15}(?:\.[0-9]{1,9})?)[ \t]*(ms|s|m|h|d|w)[ \t]*", re.ASCII)
_BARE_NUMBER = re.compile(r"[ \t]*([+-]?[0-9]+(?:\.[0-9]+)?)[ \t]*", re.ASCII)
_EXAMPLES = "such as 90s, 30m, 12h, 30d or 2w"

_ISO = re.compile(
    r"""(?P<y>[0-9]{4})-(?P<mo>[0-9]{2})-(?P<d>[0-9]{2})
    (?:[Tt\ ](?P<h>[0-9]{2}):(?P<mi>[0-9]{2})(?::(?P<s>[0-9]{2})(?:[.,](?P<f>[0-9]+))?)?)?
    \ ?(?P<z>[Zz]|[+-][0-9]{2}(?::?[0-9]{2})?)?""",
    re.ASCII | re.VERBOSE,
)
_OFFSET = re.compile(r"([+-])([0-9]{2})(?::?([0-9]{2}))?", re.ASCII)
_EPOCH = re.compile(r"[0-9]{1,20}(?:\.[0-9]{1,9})?", re.ASCII)
# An epoch number at least this large is milliseconds: as seconds it would be after the
# year 5000, as milliseconds it is after 1973-03-03 (before any NCLUE task).
EPOCH_MS_THRESHOLD = 100_000_000_000
_EPOCH_START = datetime(1970, 1, 1, tzinfo=UTC)
_POLICY_TIME = "an ISO 8601 time with a zone, such as 2026-01-01T00:00:00Z"


def parse_duration(value: object) -> float:
    """Seconds for a number with a unit (ms, s, m, h, d, w): ``90s``, ``1.5h``, ``30d``.

    A bare number (``7``, ``"7"``) is an error, never seconds; so is anything negative,
    not finite or over 100 years. The ``ValueError`` message completes "expected ...".
    """
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"a duration {_EXAMPLES}")
    if not isinstance(value, str) or _BARE_NUMBER.fullmatch(value):
        raise ValueError(_bare_number_problem(value))
    match = _DURATION.fullmatch(value)
    if not match:
        raise ValueError(f"a duration: a number and a unit (ms, s, m, h, d or w), {_EXAMPLES}")
    exact = Fraction(match.group(1)) * _UNIT_MS[match.group(2)] / 1000
    if exact > MAX_DURATION_S:
        raise ValueError(f"a duration of at most 100 years, {_EXAMPLES}")
    return float(exact)


def _bare_number_problem(value: int | float | str) -> str:
    if not isinstance(value, str) and not abs(value) < 10**15:  # huge, inf or nan
        return f"a duration with a unit, {_EXAMPLES} (a bare number has none)"
    number = value.strip() if isinstance(value, str) else repr(value)
    if number.startswith("-"):
        return f"a duration of at least 0s, {_EXAMPLES}"
    return (
        f"a duration with a unit ({number} has no unit: "
        f"write {number}d, {number}h, {number}m or {number}s)"
    )


def format_duration(seconds: float) -> str:
    """The shortest single-unit form exact to the millisecond: ``30d``, ``90s``, ``1.5s``,
    ``2w``, ``20ms``; ``parse_duration`` reads it back to the same float.

    A remainder below a millisecond is rounded away; a negative duration gets a ``-``.
    """
    if not math.isfinite(seconds):
        return f"{seconds}s"
    sign = "-" if seconds < 0 else ""
    ms = round(abs(seconds) * 1000)
    if ms == 0:
        return "0s"
    forms = []
    for unit, size in _UNIT_MS.items():
        thousandths, rest = divmod(ms * 1000, size)
        if rest == 0:  # at most three decimals in this unit
            whole, fraction = divmod(thousandths, 1000)
            number = f"{whole}.{fraction:03d}".rstrip("0") if fraction else str(whole)
            forms.append(number + unit)
    return sign + min(forms, key=len)


def iso_z(dt: datetime) -> str:
    """ISO 8601 in UTC with ``Z``: ``2026-01-01T00:00:00Z`` (microseconds when not zero)."""
    if dt.utcoffset() is None:
        raise ValueError("iso_z needs an aware datetime")
    return dt.astimezone(UTC).replace(tzinfo=None).isoformat() + "Z"


def parse_api_time(value: object, default_tz: tzinfo = UTC) -> datetime | None:
    """An API timestamp as an aware UTC datetime, or ``None`` when it cannot be read.

    Reads ISO 8601 with or without a zone (zone-less: in ``default_tz``), ``Z`` and the
    offsets ``+09:00``, ``+0900``, ``+09``, a space instead of ``T``, a date alone
    (midnight), fractions of any length (cut to microseconds), and epoch seconds or
    milliseconds as a number or a digit string: from ``EPOCH_MS_THRESHOLD`` (1e11) on, the
    number is milliseconds. Negative epochs, bools, other types and junk give ``None``.
    """
    if isinstance(value, bool):
        return None
    try:
        if isinstance(value, (int, float)):
            return _from_epoch(value)
        if not isinstance(value, str) or len(value) > 64:
            return None
        text = value.strip()
        if _canonical(text):
            try:
                return datetime.fromisoformat(text).astimezone(UTC)
            except ValueError:  # month 13, second 60 ...: as _read_iso says
                return None
        if _EPOCH.fullmatch(text):
            return _from_epoch(Fraction(text))
        parsed = _read_iso(text, default_tz)
        return None if parsed is None else parsed.astimezone(UTC)
    except OverflowError:
        return None


def _canonical(text: str) -> bool:
    """Whether ``text`` has the shape nearly every server sends: ``2026-01-01T00:00:00``,
    then nothing, ``.fff`` or ``.ffffff``, then ``Z`` or ``+HH:MM``/``-HH:MM``. Those
    ``datetime.fromisoformat`` reads as ``_read_iso`` does, only faster (a listing
    reads one per task); anything else takes the general path."""
    if not (text.isascii() and len(text) >= 20 and text[10] == "T" and text[11:13] < "24"):
        return False
    if text[4] != "-" or text[7] != "-" or text[13] != ":" or text[16] != ":":
        return False
    digits = text[:4] + text[5:7] + text[8:10] + text[11:13] + text[14:16] + text[17:19]
    rest = text[19:]
    if rest[:1] == ".":
        if rest[7:8] in ("Z", "+", "-"):
            width = 6
        elif rest[4:5] in ("Z", "+", "-"):
            width = 3
        else:
            return False
        digits += rest[1 : 1 + width]
        rest = rest[1 + width :]
    if rest == "Z":
        return digits.isdigit()
    return (
        len(rest) == 6
        and rest[0] in "+-"
        and rest[3] == ":"
        and (digits + rest[1:3] + rest[4:6]).isdigit()
        and rest[1:3] < "24"
        and rest[4:6] < "60"
    )


def _from_epoch(number: int | float | Fraction) -> datetime | None:
    if isinstance(number, float) and not math.isfinite(number):
        return None
    if number < 0:
        return None
    if number >= EPOCH_MS_THRESHOLD:
        return _EPOCH_START + timedelta(milliseconds=float(number))
    return _EPOCH_START + timedelta(seconds=float(number))


def _read_iso(text: str, default_tz: tzinfo | None) -> datetime | None:
    """ISO 8601, or ``None``; a zone-less time gets ``default_tz`` (``None``: stays naive)."""
    match = _ISO.fullmatch(text)
    if not match:
        return None
    part = match.groupdict()
    try:
        zone = _offset(part["z"]) if part["z"] else default_tz
        return datetime(
            int(part["y"]),
            int(part["mo"]),
            int(part["d"]),
            int(part["h"] or 0),
            int(part["mi"] or 0),
            int(part["s"] or 0),
            int((part["f"] or "")[:6].ljust(6, "0")),
            tzinfo=zone,
        )
    except ValueError:  # month 13, hour 24, second 60, offset +25:00 ...
        return None


def _offset(text: str) -> timezone:
    if text in ("Z", "z"):
        return UTC
    match = _OFFSET.fullmatch(text)
    if not match:
        raise ValueError(f"not a UTC offset: {text}")
    hours, minutes = int(match.group(2)), int(match.group(3) or 0)
    if hours > 23 or minutes > 59:
        raise ValueError(f"not a UTC offset: {text}")
    delta = timedelta(hours=hours, minutes=minutes)
    return timezone(-delta if match.group(1) == "-" else delta)


def parse_policy_time(value: object) -> datetime:
    """A policy timestamp (a string or a YAML timestamp) that carries a zone, in UTC.

    A zone-less time or a bare date is refused: which midnight it means would depend on
    where the job runs. The ``ValueError`` message completes "expected ...".
    """
    parsed: datetime | None = None
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, date):
        raise ValueError(_bare_date(value.isoformat()))
    elif isinstance(value, str):
        text = value.strip()
        match = _ISO.fullmatch(text)
        if match and match["h"] is None:
            raise ValueError(_bare_date(match.group("y", "mo", "d")))
        parsed = _read_iso(text, None)
    if parsed is None:
        raise ValueError(_POLICY_TIME)
    if parsed.utcoffset() is None:
        raise ValueError(
            f"a time with a zone (this one has none): add one, e.g. {_example(parsed)}"
        )
    return parsed.astimezone(UTC)


def _bare_date(day: str | tuple[str, ...]) -> str:
    text = "-".join(day) if isinstance(day, tuple) else day
    return f"a time with a zone, not a bare date: add a zone, e.g. {text}T00:00:00Z"


def _example(naive: datetime) -> str:
    return naive.replace(microsecond=0).isoformat() + "Z"


def parse_zone(value: object) -> tzinfo:
    """A zone to read zone-less API times in: ``UTC``, an IANA name such as ``Asia/Seoul``
    (zoneinfo), or a fixed offset such as ``+09:00``. Raises ``ValueError``."""
    expected = "a time zone such as UTC, Asia/Seoul or '+09:00'"
    if isinstance(value, int) and not isinstance(value, bool):
        raise ValueError(f"{expected} (unquoted, YAML reads +9:00 as the number 540)")
    if not isinstance(value, str) or not value.strip():
        raise ValueError(expected)
    text = value.strip()
    if text.upper() in ("UTC", "Z", "ETC/UTC"):
        return UTC
    try:
        return _offset(text) if text[0] in "+-" else ZoneInfo(text)
    except (ValueError, KeyError, OSError):  # KeyError: ZoneInfoNotFoundError
        raise ValueError(f"{expected} (not a zone this system knows)") from None


def format_age(delta: timedelta) -> str:
    """An age in its largest whole unit, rounded down: ``3d``, ``5h``, ``12m``, ``40s``."""
    seconds = int(delta.total_seconds())
    sign, seconds = ("-", -seconds) if seconds < 0 else ("", seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{sign}{seconds // size}{unit}"
    return f"{sign}{seconds}s"
