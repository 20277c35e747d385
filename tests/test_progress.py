"""Progress in every phase: the live view's text, the log events, rates and ETAs."""

from __future__ import annotations

import io
import re
import sys

import pytest
from rich.console import Console
from structlog.testing import capture_logs

from cleanup.progress import LiveProgress, LogProgress, RateWindow, Snapshot, format_duration

LISTING = Snapshot(
    "listing", 0, 0, {}, 12, 0.0, 1.0, pages=12, tasks_seen=1200, expected_tasks=20000
)
DELETING = Snapshot(
    "deleting", 109, 368, {"deleted": 100, "failed": 9, "skipped": 0}, 130, 36.1, 40.0, retries=2
)
WAITING = Snapshot(
    "waiting",
    360,
    368,
    {"deleted": 360},
    400,
    0.0,
    1.0,
    waiting=8,
    held_by={"task busy": 3, "run": 4, "profile": 1},
    next_look_in_s=42,
    retries=1,
)
_REDRAW = re.compile(r"\r(\x1b\[2K|\x1b\[1A)+")  # Live moving up to draw the next frame
_CONTROL = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def live(*snapshots: Snapshot, between: str | None = None) -> list[str]:
    """Each frame's lines an 80-column terminal received while LiveProgress showed ``snapshots``."""
    out = io.StringIO()
    progress = LiveProgress(Console(file=out, force_terminal=True, width=80))
    for snapshot in snapshots:
        progress.update(snapshot)
        if between is not None:
            print(between, file=sys.stderr)
    progress.close()
    return _CONTROL.sub("", _REDRAW.sub("\n", out.getvalue())).splitlines()


@pytest.mark.parametrize(
    ("snapshot", "first", "second"),
    [
        (
            LISTING,
            "listing: 12 pages, 1,200 of ~20,000 tasks, ETA 3m08s at 1/s",
            "12 requests, 0 retries",
        ),
        (
            Snapshot("listing", 0, 0, {}, 1, 0.0, 0.5, pages=1, tasks_seen=100),
            "listing: 1 page, 100 tasks so far at 0.5/s",
            "1 request, 0 retries",
        ),
        (
            Snapshot("looking_up", 40, 120, {}, 41, 2.0, 2.0),
            "looking up: 40/120, 2.0/s, 80 left, ETA 40s",
            "41 requests, 0 retries",
        ),
        (
            DELETING,
            "deleting: 109/368, 36.1/s, 259 left, ETA 8s",
            "deleted 100, failed 9; 130 requests, 2 retries",
        ),
        (
            WAITING,
            "waiting for 8 busy tasks (task busy 3, run 4, profile 1), next look in 42s",
            "deleted 360; 400 requests, 1 retry",
        ),
        (
            Snapshot("verifying", 50, 100, {"deleted": 50}, 160, 0.0, 1.0),
            "verifying: 50/100, 0.0/s, 50 left, ETA ?",
            "deleted 50; 160 requests, 0 retries",
        ),
    ],
    ids=["listing", "listing-no-total", "looking_up", "deleting", "waiting", "verifying"],
)
def test_live_view_says_what_each_phase_is_doing(
    snapshot: Snapshot, first: str, second: str
) -> None:
    """Each phase's live view is two literal lines: what and when, then outcomes and cost."""
    assert live(snapshot)[-2:] == [first, second]


def test_live_view_moves_through_phases_with_logs_above_it() -> None:
    """Lines printed to stderr while the view runs come out whole, between redraws."""
    lines = live(LISTING, DELETING, WAITING, between="2026-12-01 retrying attempt=2")
    assert lines.count("2026-12-01 retrying attempt=2") == 3
    assert lines[-2:] == [
        "waiting for 8 busy tasks (task busy 3, run 4, profile 1), next look in 42s",
        "deleted 360; 400 requests, 1 retry",
    ]
    assert sys.stderr is not None and "FileProxy" not in type(sys.stderr).__name__


def test_live_view_cuts_long_lines_instead_of_wrapping() -> None:
    """A headline wider than the terminal ends in an ellipsis and stays one line."""
    held = {f"profile-{i}": i for i in range(1, 20)}
    snapshot = Snapshot("waiting", 0, 30, {}, 5, 0.0, 1.0, waiting=30, held_by=held)
    first, second = live(snapshot)[-2:]
    assert len(first) == 80 and first.endswith("…")
    assert first.startswith("waiting for 30 busy tasks (profile-1 1, profile-2 2")
    assert second == "5 requests, 0 retries"


def test_closing_a_live_view_never_started_prints_nothing() -> None:
    """close() before any update (a run that failed at once) leaves the terminal alone."""
    out = io.StringIO()
    progress = LiveProgress(Console(file=out, force_terminal=True, width=80))
    progress.close()
    progress.close()
    assert out.getvalue() == ""


def test_log_progress_logs_every_field_of_the_snapshot() -> None:
    """Off a terminal, each snapshot is one ``progress`` event with the same fields."""
    with capture_logs() as logs:
        LogProgress().update(DELETING)
        LogProgress().update(WAITING)
    assert logs == [
        {
            "event": "progress",
            "log_level": "info",
            "phase": "deleting",
            "done": 109,
            "total": 368,
            "left": 259,
            "counts": {"deleted": 100, "failed": 9},
            "requests": 130,
            "rate": 36.1,
            "configured_rate": 40.0,
            "eta_s": 7,
            "pages": 0,
            "tasks_seen": 0,
            "expected_tasks": None,
            "waiting": 0,
            "held_by": {},
            "next_look_in_s": None,
            "retries": 2,
        },
        {
            "event": "progress",
            "log_level": "info",
            "phase": "waiting",
            "done": 360,
            "total": 368,
            "left": 8,
            "counts": {"deleted": 360},
            "requests": 400,
            "rate": 0.0,
            "configured_rate": 1.0,
            "eta_s": None,
            "pages": 0,
            "tasks_seen": 0,
            "expected_tasks": None,
            "waiting": 8,
            "held_by": {"task busy": 3, "run": 4, "profile": 1},
            "next_look_in_s": 42,
            "retries": 1,
        },
    ]


def test_log_progress_defaults_to_every_five_seconds() -> None:
    """The log reporter asks for a snapshot every 5 s unless told otherwise."""
    assert LogProgress().interval_s == 5.0
    assert LogProgress(interval_s=0.1).interval_s == 0.1


@pytest.mark.parametrize(
    ("snapshot", "eta"),
    [
        (LISTING, 188.0),  # 18,800 tasks left at 100 a page: 188 pages at 1/s
        (
            Snapshot(
                "listing", 0, 0, {}, 3, 0.0, 2.0, pages=3, tasks_seen=250, expected_tasks=1000
            ),
            4.5,
        ),
        (Snapshot("listing", 0, 0, {}, 3, 0.0, 1.0, pages=3, tasks_seen=300), None),
        (Snapshot("listing", 0, 0, {}, 0, 0.0, 1.0, expected_tasks=500), None),
        (DELETING, 259 / 36.1),
        (WAITING, None),
    ],
    ids=["listing", "partial-pages", "listing-no-total", "no-page-yet", "deleting", "waiting"],
)
def test_eta_per_phase(snapshot: Snapshot, eta: float | None) -> None:
    """Listing's ETA is pages left at the configured rate; other phases use the recent rate."""
    assert snapshot.eta_s == eta


def test_rate_window_measures_recent_finishes() -> None:
    """The rate is finished tasks per second over the window, forgetting older points."""
    now = [0.0]
    window = RateWindow(window_s=10.0, clock=lambda: now[0])
    assert window.rate(0) == 0.0
    for t, done in ((5.0, 50), (10.0, 100), (20.0, 110)):
        now[0] = t
        rate = window.rate(done)
    assert rate == 1.0  # (110 - 100) / (20 - 10): the points before t=10 left the window


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(None, "?"), (0, "0s"), (7.2, "8s"), (59, "59s"), (190, "3m10s"), (3720, "1h02m")],
)
def test_format_duration(seconds: float | None, text: str) -> None:
    """Durations read as seconds, minutes and seconds, or hours and minutes."""
    assert format_duration(seconds) == text
