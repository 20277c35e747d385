"""Time formats: durations always carry a unit, API timestamps are read every documented way."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cleanup import times
from cleanup.model import Task
from cleanup.times import (
    EPOCH_MS_THRESHOLD,
    MAX_DURATION_S,
    format_age,
    format_duration,
    iso_z,
    parse_api_time,
    parse_duration,
    parse_policy_time,
    parse_zone,
)

UTC = UTC
KST = timezone(timedelta(hours=9))
NEW_YEAR = datetime(2026, 1, 1, tzinfo=UTC)

# -- parse_duration --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("1ms", 0.001),
        ("500ms", 0.5),
        ("0s", 0.0),
        ("90s", 90.0),
        ("0.5s", 0.5),
        ("2m", 120.0),
        ("12h", 43200.0),
        ("1.5h", 5400.0),
        ("30d", 2592000.0),
        ("2w", 1209600.0),
        (" 3 h ", 10800.0),
        ("7 d", 604800.0),
        ("\t45s\t", 45.0),
        ("0.123h", 442.8),
        ("36500d", MAX_DURATION_S),
    ],
)
def test_parse_duration_reads_every_unit(text: str, seconds: float):
    """parse_duration turns a number and a unit into seconds, exactly."""
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (7, "7 has no unit: write 7d, 7h, 7m or 7s"),
        ("7", "7 has no unit: write 7d, 7h, 7m or 7s"),
        (" 30 ", "30 has no unit"),
        (2.5, "2.5 has no unit"),
        (0, "0 has no unit"),
        ("0", "0 has no unit"),
        (-5, "at least 0s"),
        ("-5", "at least 0s"),
        ("-5s", "a number and a unit"),
        (float("nan"), "a bare number has none"),
        (float("inf"), "a bare number has none"),
        (10**400, "a bare number has none"),
        ("36501d", "at most 100 years"),
        ("1000000d", "at most 100 years"),
        ("1" + "0" * 400 + "s", "a number and a unit"),
        ("", "a number and a unit"),
        ("s", "a number and a unit"),
        ("30x", "a number and a unit"),
        ("30D", "a number and a unit"),
        ("30 days", "a number and a unit"),
        ("30\u00a0d", "a number and a unit"),
        ("\u0663d", "a number and a unit"),
        ("1.s", "a number and a unit"),
        ("1e3s", "a number and a unit"),
        ("1 d 2h", "a number and a unit"),
        ("1h30m", "a number and a unit"),
        (True, "a duration"),
        (False, "a duration"),
        (None, "a duration"),
        ([], "a duration"),
        ({"s": 1}, "a duration"),
    ],
)
def test_parse_duration_refuses_with_the_reason(value: object, message: str):
    """A bare number is refused with a hint to add a unit; other bad values say what is wrong."""
    with pytest.raises(ValueError, match="a duration") as caught:
        parse_duration(value)
    assert message in str(caught.value)


# -- format_duration -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.0, "0s"),
        (0.001, "1ms"),
        (0.02, "20ms"),
        (0.2, "0.2s"),
        (0.5, "0.5s"),
        (1.0, "1s"),
        (1.5, "1.5s"),
        (59.0, "59s"),
        (60.0, "1m"),
        (90.0, "90s"),
        (1800.0, "30m"),
        (3600.0, "1h"),
        (5400.0, "90m"),
        (86400.0, "1d"),
        (604800.0, "7d"),
        (1209600.0, "2w"),
        (2592000.0, "30d"),
        (86401.0, "86401s"),
        (442.8, "7.38m"),
        (-90.0, "-90s"),
        (0.0004, "0s"),
        (float("inf"), "infs"),
    ],
)
def test_format_duration_is_the_shortest_exact_form(seconds: float, text: str):
    """format_duration picks the shortest single-unit form that is exact to the millisecond."""
    assert format_duration(seconds) == text


@given(st.integers(min_value=0, max_value=int(MAX_DURATION_S * 1000)))
def test_format_duration_round_trips_through_parse_duration(ms: int):
    """Whatever format_duration writes, parse_duration reads back to the same seconds."""
    seconds = ms / 1000
    assert parse_duration(format_duration(seconds)) == seconds


# -- iso_z -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("moment", "text"),
    [
        (NEW_YEAR, "2026-01-01T00:00:00Z"),
        (datetime(2026, 1, 1, 9, tzinfo=KST), "2026-01-01T00:00:00Z"),
        (datetime(2026, 1, 1, 0, 0, 0, 5, tzinfo=UTC), "2026-01-01T00:00:00.000005Z"),
        (datetime(2026, 7, 1, 9, tzinfo=ZoneInfo("Asia/Seoul")), "2026-07-01T00:00:00Z"),
    ],
)
def test_iso_z_writes_utc_with_z(moment: datetime, text: str):
    """iso_z writes any aware time as ISO 8601 in UTC ending in Z."""
    assert iso_z(moment) == text


def test_iso_z_refuses_a_naive_time():
    """iso_z refuses a naive datetime rather than guess its zone."""
    with pytest.raises(ValueError, match="aware"):
        iso_z(datetime(2026, 1, 1))


# -- parse_api_time --------------------------------------------------------------------------

API_TIMES = [
    # ISO 8601 with a zone, every spelling of it
    ("2026-01-01T00:00:00Z", NEW_YEAR),
    ("2026-01-01T00:00:00z", NEW_YEAR),
    ("2026-01-01t00:00:00Z", NEW_YEAR),
    ("2026-01-01T09:00:00+09:00", NEW_YEAR),
    ("2026-01-01T09:00:00+0900", NEW_YEAR),
    ("2026-01-01T09:00:00+09", NEW_YEAR),
    ("2025-12-31T19:00:00-05:00", NEW_YEAR),
    ("2025-12-31T19:00:00-0500", NEW_YEAR),
    ("2026-01-01T05:30:00+05:30", NEW_YEAR),
    ("2026-01-01T00:00:00+00:00", NEW_YEAR),
    ("2026-01-01T00:00:00-00:00", NEW_YEAR),
    ("2026-01-01 09:00:00+09:00", NEW_YEAR),
    ("2026-01-01T09:00:00 +0900", NEW_YEAR),
    ("  2026-01-01T00:00:00Z  ", NEW_YEAR),
    ("2026-01-01T00:00Z", NEW_YEAR),
    # fractions of any length, cut (not rounded) to microseconds
    ("2026-01-01T00:00:00.5Z", NEW_YEAR.replace(microsecond=500000)),
    ("2026-01-01T00:00:00.12Z", NEW_YEAR.replace(microsecond=120000)),
    ("2026-01-01T00:00:00.123Z", NEW_YEAR.replace(microsecond=123000)),
    ("2026-01-01T00:00:00.1234Z", NEW_YEAR.replace(microsecond=123400)),
    ("2026-01-01T00:00:00.12345Z", NEW_YEAR.replace(microsecond=123450)),
    ("2026-01-01T00:00:00.123456Z", NEW_YEAR.replace(microsecond=123456)),
    ("2026-01-01T00:00:00.1234567Z", NEW_YEAR.replace(microsecond=123456)),
    ("2026-01-01T00:00:00.123456789Z", NEW_YEAR.replace(microsecond=123456)),
    ("2026-01-01T00:00:00.9999999999999Z", NEW_YEAR.replace(microsecond=999999)),
    ("2026-01-01T00:00:00,25Z", NEW_YEAR.replace(microsecond=250000)),
    ("2026-01-01T09:00:00.5+0900", NEW_YEAR.replace(microsecond=500000)),
    # zone-less: read in the default zone (UTC here)
    ("2026-01-01T00:00:00", NEW_YEAR),
    ("2026-01-01 00:00:00", NEW_YEAR),
    ("2026-01-01T00:00:00.1234567", NEW_YEAR.replace(microsecond=123456)),
    ("2026-01-01T00:00", NEW_YEAR),
    ("2026-01-01", NEW_YEAR),
    # epoch seconds and milliseconds, numbers and digit strings
    (1767225600, NEW_YEAR),
    (1767225600.25, NEW_YEAR.replace(microsecond=250000)),
    ("1767225600", NEW_YEAR),
    ("1767225600.5", NEW_YEAR.replace(microsecond=500000)),
    (1767225600000, NEW_YEAR),
    (1767225600123, NEW_YEAR.replace(microsecond=123000)),
    ("1767225600123", NEW_YEAR.replace(microsecond=123000)),
    (1767225600000.5, NEW_YEAR.replace(microsecond=500)),
    (0, datetime(1970, 1, 1, tzinfo=UTC)),
    (EPOCH_MS_THRESHOLD - 1, datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=1e11 - 1)),
    (EPOCH_MS_THRESHOLD, datetime(1973, 3, 3, 9, 46, 40, tzinfo=UTC)),
]


@pytest.mark.parametrize(("value", "expected"), API_TIMES, ids=[repr(v) for v, _ in API_TIMES])
def test_parse_api_time_reads_every_documented_form(value: object, expected: datetime):
    """ISO 8601 in every spelling, fractions of any length and epoch s/ms all read as UTC."""
    parsed = parse_api_time(value)
    assert parsed == expected
    assert parsed is not None and parsed.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    ("value", "zone", "expected"),
    [
        ("2026-01-01T09:00:00", KST, NEW_YEAR),
        ("2026-01-01T09:00:00", ZoneInfo("Asia/Seoul"), NEW_YEAR),
        ("2026-07-01T09:00:00", ZoneInfo("Asia/Seoul"), datetime(2026, 7, 1, tzinfo=UTC)),
        ("2026-07-01T00:00:00", ZoneInfo("America/New_York"), datetime(2026, 7, 1, 4, tzinfo=UTC)),
        ("2026-01-01T00:00:00", ZoneInfo("America/New_York"), datetime(2026, 1, 1, 5, tzinfo=UTC)),
        ("2026-01-01T00:00:00Z", KST, NEW_YEAR),
        ("2026-01-01T00:00:00+00:00", KST, NEW_YEAR),
        (1767225600, KST, NEW_YEAR),
    ],
)
def test_parse_api_time_reads_zone_less_times_in_the_default_zone(
    value: object, zone: tzinfo, expected: datetime
):
    """A zone-less time is read in default_tz; a time with a zone or an epoch ignores it."""
    assert parse_api_time(value, zone) == expected


@pytest.mark.parametrize(
    "value",
    [
        None,
        True,
        False,
        [],
        ["2026-01-01T00:00:00Z"],
        {"t": 1},
        b"2026-01-01T00:00:00Z",
        "",
        "   ",
        "junk",
        "yesterday",
        "2026-13-01T00:00:00Z",
        "2026-02-30T00:00:00Z",
        "2026-01-01T24:00:00Z",
        "2026-01-01T00:60:00Z",
        "2026-01-01T00:00:60Z",
        "2026-01-01T00:00:00+24:00",
        "2026-01-01T00:00:00+09:60",
        "2026-01-01T00:00:00+9",
        "2026-01-01T00:00:00 Z Z",
        "2026-01-01T00:00:00.Z",
        "2026-1-1T00:00:00Z",
        "26-01-01T00:00:00Z",
        "0000-01-01T00:00:00Z",
        "0001-01-01T00:00:00+01:00",
        "9999-12-31T23:59:59-01:00",
        "2026-01-01T00:00:00Z" + " " * 60,
        "\u0662\u0660\u0662\u0666-01-01T00:00:00Z",
        "-1767225600",
        "1" * 21,
        -1,
        -0.5,
        float("nan"),
        float("inf"),
        1e30,
        10**30,
    ],
)
def test_parse_api_time_gives_none_for_anything_unreadable(value: object):
    """Junk, bools, containers and out-of-range values give None, never an exception."""
    assert parse_api_time(value) is None


@given(
    st.datetimes(
        min_value=datetime(1, 1, 2),
        max_value=datetime(9999, 12, 30),
        timezones=st.sampled_from(
            [UTC, KST, timezone(timedelta(hours=-5)), ZoneInfo("Asia/Seoul")]
        ),
    )
)
def test_parse_api_time_reads_back_iso_z(moment: datetime):
    """Any aware time written with iso_z is read back as the same instant."""
    assert parse_api_time(iso_z(moment)) == moment.astimezone(UTC)


@given(st.integers(min_value=0, max_value=EPOCH_MS_THRESHOLD - 1))
def test_parse_api_time_reads_epoch_seconds_below_the_threshold(seconds: int):
    """Epoch numbers below the threshold are seconds; times 1000 they are milliseconds."""
    as_seconds = parse_api_time(seconds)
    assert as_seconds == datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=seconds)
    if seconds * 1000 >= EPOCH_MS_THRESHOLD:
        assert parse_api_time(seconds * 1000) == as_seconds
        assert parse_api_time(str(seconds * 1000)) == as_seconds


# -- parse_policy_time -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-01-01T00:00:00Z", NEW_YEAR),
        ("2026-01-01T09:00:00+09:00", NEW_YEAR),
        ("2026-01-01 09:00:00+0900", NEW_YEAR),
        (NEW_YEAR, NEW_YEAR),
        (datetime(2026, 1, 1, 9, tzinfo=KST), NEW_YEAR),
    ],
)
def test_parse_policy_time_reads_times_with_a_zone(value: object, expected: datetime):
    """A policy time with a zone (string or YAML timestamp) becomes the same instant in UTC."""
    parsed = parse_policy_time(value)
    assert parsed == expected
    assert parsed.tzinfo == UTC


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("2026-01-01T10:00:00", "add one, e.g. 2026-01-01T10:00:00Z"),
        (datetime(2026, 1, 1, 10), "a time with a zone (this one has none)"),
        ("2026-01-01", "not a bare date: add a zone, e.g. 2026-01-01T00:00:00Z"),
        (date(2026, 1, 1), "not a bare date: add a zone, e.g. 2026-01-01T00:00:00Z"),
        ("tomorrow", "an ISO 8601 time with a zone"),
        ("2026-13-01T00:00:00Z", "an ISO 8601 time with a zone"),
        (1767225600, "an ISO 8601 time with a zone"),
        (None, "an ISO 8601 time with a zone"),
    ],
)
def test_parse_policy_time_refuses_zone_less_times_and_dates(value: object, message: str):
    """A policy time without a zone, a bare date or junk is refused with how to write it."""
    with pytest.raises(ValueError) as caught:
        parse_policy_time(value)
    assert message in str(caught.value)


# -- parse_zone ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "zone"),
    [
        ("UTC", UTC),
        ("utc", UTC),
        ("Etc/UTC", UTC),
        (" UTC ", UTC),
        ("Asia/Seoul", ZoneInfo("Asia/Seoul")),
        ("America/New_York", ZoneInfo("America/New_York")),
        ("+09:00", KST),
        ("+0900", KST),
        ("+09", KST),
        ("-05:30", timezone(-timedelta(hours=5, minutes=30))),
        ("+00:00", UTC),
    ],
)
def test_parse_zone_reads_names_and_offsets(text: str, zone: tzinfo):
    """UTC, IANA names (zoneinfo) and fixed offsets are all zones for zone-less API times."""
    assert parse_zone(text) == zone


@pytest.mark.parametrize(
    "value",
    ["", " ", "Asia", "Mars/Olympus", "../etc/passwd", "/etc/localtime", "+25:00", "+9", 540, None],
)
def test_parse_zone_refuses_unknown_zones(value: object):
    """An unknown zone name, a bad offset or a number is a ValueError naming the forms."""
    with pytest.raises(ValueError, match="a time zone such as UTC, Asia/Seoul or '\\+09:00'"):
        parse_zone(value)


# -- format_age ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("delta", "text"),
    [
        (timedelta(0), "0s"),
        (timedelta(seconds=40), "40s"),
        (timedelta(seconds=59.9), "59s"),
        (timedelta(minutes=1), "1m"),
        (timedelta(minutes=12, seconds=59), "12m"),
        (timedelta(hours=5, minutes=59), "5h"),
        (timedelta(days=3, hours=23), "3d"),
        (timedelta(days=400), "400d"),
        (timedelta(minutes=-5), "-5m"),
    ],
)
def test_format_age_uses_the_largest_whole_unit(delta: timedelta, text: str):
    """format_age rounds an age down to its largest whole unit (d, h, m, s)."""
    assert format_age(delta) == text


_PIECES = st.sampled_from([*"0123456789", "T", "Z", "z", ":", "-", "+", ".", " ", "٣"])


@settings(max_examples=3000)
@given(
    when=st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)),
    fraction=st.sampled_from(["", ".1", ".123", ".1234", ".123456", ".1234567"]),
    zone=st.sampled_from(["Z", "z", "+09:00", "-05:30", "+23:59", "+24:00", "+0900", "", " Z"]),
    noise=st.lists(st.tuples(st.integers(0, 40), _PIECES), max_size=2),
)
def test_the_fast_path_reads_as_the_general_one(when, fraction, zone, noise):
    """Every string, canonical or nearly so, reads the same through the fast path
    (``fromisoformat``) as through the general reader, including None for nonsense."""
    chars = list(when.strftime("%Y-%m-%dT%H:%M:%S") + fraction + zone)
    for where, piece in noise:
        chars[min(where, len(chars) - 1)] = piece
    text = "".join(chars)
    general = times._read_iso(text.strip(), UTC)
    expected = None if general is None else general.astimezone(UTC)
    if times._EPOCH.fullmatch(text.strip()):
        return  # a digit string is an epoch, read before either
    assert parse_api_time(text) == expected


@settings(max_examples=1000)
@given(
    when=st.datetimes(timezones=st.sampled_from([UTC, timezone(timedelta(hours=9))])),
)
def test_a_task_gives_back_its_created_at_exactly(when):
    """A task stores a UTC time compactly, and any time it is given comes back as it
    was: the same instant, the same zone, equal tasks for equal times."""
    task = Task("t1", "exp", "completed", when)
    assert task.created_at == when and task.created_at.tzinfo == when.tzinfo
    assert task == Task("t1", "exp", "completed", when)
    assert hash(task) == hash(Task("t1", "exp", "completed", when))
