"""What people see (issue 16): usage errors said out loud, one actionable line per
connection, TLS, route and auth error, the credentials order, stdout conventions
(``--output json``, ``-``, ``NO_COLOR``), the notebook API, and summaries that explain.

The command line runs as a subprocess against the bundled simulator on loopback, in
the test's own directory; ``NO_COLOR`` runs under a pseudo-terminal so stderr is one.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import pty
import re
import select
import signal
import socket
import struct
import subprocess
import sys
import termios
import textwrap
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from cleanup import Settings, run_policy_sync
from cleanup.errors import UsageError
from cleanup.simulator import SimConfig, SimState
from cleanup.simulator.server import Simulator, running_in_thread

from .conftest import AK, CREDS, OLD, SK, account, clean_env, policy

SGR = re.compile(r"\x1b\[[0-9;]*m")
"""An ANSI colour (Select Graphic Rendition) sequence."""


async def cli(
    cwd: Path, *args: str, env: dict[str, str] | None = None, stdin: bytes = b""
) -> tuple[int, str, str]:
    """``python -m cleanup ARGS`` in ``cwd``, stdout and stderr piped: (code, out, err)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "cleanup",
        *args,
        cwd=cwd,
        env=clean_env(**(env or {})),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(stdin), timeout=90)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def cli_on_a_terminal(cwd: Path, *args: str, env: dict[str, str]) -> tuple[int, str, str]:
    """``python -m cleanup ARGS`` with stderr on an 80-column pseudo-terminal (blocking)."""
    controller, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 80, 0, 0))
    proc = subprocess.Popen(
        [sys.executable, "-m", "cleanup", *args],
        cwd=cwd,
        env=clean_env(**env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=terminal,
    )
    os.close(terminal)
    seen = bytearray()
    while True:
        ready, _, _ = select.select([controller], [], [], 0.2)
        if not ready:
            if proc.poll() is not None:
                break
            continue
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # the terminal closed with the process
            break
        if not chunk:
            break
        seen += chunk
    assert proc.stdout is not None
    with proc.stdout:
        out = proc.stdout.read()
    proc.wait(timeout=60)
    os.close(controller)
    return proc.returncode, out.decode(), seen.decode()


def creds_env(sim: Any, secret: str = SK) -> dict[str, str]:
    return {"NCLOUD_ACCESS_KEY": AK, "NCLOUD_SECRET_KEY": secret, "NCLUE_ENDPOINT": sim.url}


def write_policy(tmp_path: Path, doc: dict[str, Any], name: str = "policy.yaml") -> str:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(doc))
    return str(path)


def unfolded(text: str) -> str:
    """``text`` with every run of whitespace (line breaks included) as one space."""
    return " ".join(text.split())


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- empty input is said out loud ----------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "from_stdin"),
    [("", False), ("# superseded by retrain 42\n\n   # none this time\n", False), ("", True)],
    ids=["empty-file", "comments-only-file", "empty-stdin"],
)
async def test_empty_ids_input_is_a_usage_error(make_sim, tmp_path, content, from_stdin):
    """An empty or comments-only --ids-from file, or empty stdin, exits 2 saying so, no request."""
    sim = await make_sim(account(3))
    path = write_policy(tmp_path, {"version": 1, "select": {}})
    ids = tmp_path / "ids.txt"
    ids.write_text(content)
    source = "-" if from_stdin else str(ids)
    code, out, err = await cli(
        tmp_path,
        "run",
        "--policy",
        path,
        "--apply",
        "--ids-from",
        source,
        env=creds_env(sim),
        stdin=content.encode(),
    )
    where = "stdin" if from_stdin else str(ids)
    assert code == 2
    assert err == (
        f"nclue-cleanup: error: --ids-from {where}: no task IDs in it "
        "(empty, or only comments); nothing to do\n"
    )
    assert out == ""
    assert sim.state.total_requests() == 0


# -- one actionable line per connection, TLS, route and auth error ----------------------


async def test_wrong_secret_exits_3_without_an_empty_plan(make_sim, tmp_path):
    """A wrong secret exits 3 with the API's refusal and prints no empty 'would delete 0' plan."""
    sim = await make_sim(account(3))
    path = write_policy(tmp_path, policy({"all": True}))
    code, out, err = await cli(
        tmp_path, "run", "--policy", path, "--audit-log", "a.jsonl", env=creds_env(sim, "wrong")
    )
    assert code == 3
    text = unfolded(out + err)
    assert "HTTP 401 errorCode 200: Authentication Failed" in text
    assert "exit code 3: authentication or permission failure: stopped" in text
    assert "would delete" not in out + err
    assert "what --apply would do" not in out + err
    assert sim.state.count(method="DELETE") == 0


async def test_closed_port_names_the_endpoint_and_what_to_check(tmp_path):
    """A closed port says 'cannot connect to' the endpoint and what to check, never aiohttp's
    exception class name."""
    port = closed_port()
    path = write_policy(tmp_path, policy({"all": True}))
    env = {"NCLOUD_ACCESS_KEY": AK, "NCLOUD_SECRET_KEY": SK}
    endpoint = f"http://127.0.0.1:{port}/api/v1"
    code, out, err = await cli(
        tmp_path, "run", "--policy", path, "--audit-log", "a.jsonl", "--endpoint", endpoint, env=env
    )
    assert code == 1
    text = unfolded(out + err)
    assert f"cannot connect to http://127.0.0.1:{port}" in text
    assert "check --endpoint / NCLUE_ENDPOINT and the network" in text
    assert "ClientConnectorError" not in out + err and "ClientOSError" not in out + err
    assert "Traceback" not in out + err


async def test_error_line_is_one_line_when_piped(tmp_path):
    """Piped (a CronJob's log), the run's error is one physical line a grep finds whole."""
    port = closed_port()
    path = write_policy(tmp_path, policy({"all": True}))
    env = {"NCLOUD_ACCESS_KEY": AK, "NCLOUD_SECRET_KEY": SK}
    endpoint = f"http://127.0.0.1:{port}/api/v1"
    code, out, _ = await cli(
        tmp_path, "run", "--policy", path, "--audit-log", "a.jsonl", "--endpoint", endpoint, env=env
    )
    assert code == 1
    errors = [line for line in out.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1
    assert f"cannot connect to http://127.0.0.1:{port}" in errors[0]
    assert errors[0].endswith("nothing was deleted")


@pytest.mark.parametrize(
    "body",
    [
        "json",
        "html",
        "text",
    ],
)
async def test_missing_api_prefix_is_endpoint_or_route_not_found(make_sim, tmp_path, body):
    """An endpoint without /api/v1 exits 2 with 'endpoint or route not found', sent once, and
    is not called 'failed after retries'."""
    sim = await make_sim(account(3), route_404_body=body)
    path = write_policy(tmp_path, policy({"all": True}))
    env = {**creds_env(sim), "NCLUE_ENDPOINT": sim.base_url}
    code, out, err = await cli(tmp_path, "run", "--policy", path, "--audit-log", "a.jsonl", env=env)
    text = unfolded(out + err)
    assert code == 2, text
    assert "endpoint or route not found" in text
    assert "(the base URL ends in /api/v1); nothing was deleted" in text
    assert "failed after retries" not in text
    assert sim.state.count(route="list_tasks") <= 1


async def test_https_against_plain_http_says_it_does_not_speak_tls(make_sim, tmp_path):
    """https:// to the plain-http simulator exits 2 saying the server does not speak TLS."""
    sim = await make_sim(account(3))
    path = write_policy(tmp_path, policy({"all": True}))
    origin = sim.base_url.replace("http://", "https://")
    env = {**creds_env(sim), "NCLUE_ENDPOINT": origin + "/api/v1"}
    code, out, err = await cli(tmp_path, "run", "--policy", path, "--audit-log", "a.jsonl", env=env)
    text = unfolded(out + err)
    assert code == 2
    assert f"TLS handshake with {origin} failed: the server does not speak TLS" in text
    assert "verification failed" not in text and "certificate" not in text
    assert sim.state.count(method="DELETE") == 0


# -- credentials: first found wins --------------------------------------------------------


def _configure(home: Path, access: str, secret: str) -> None:
    path = home / ".ncloud" / "configure"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f"[DEFAULT]\nncloud_access_key_id = {access}\nncloud_secret_access_key = {secret}\n"
    )
    path.chmod(0o600)


async def test_credentials_file_beats_stale_environment(make_sim, tmp_path):
    """--credentials-file is used although stale NCLOUD_* variables are set."""
    sim = await make_sim(account(3))
    path = write_policy(tmp_path, policy({"all": True}))
    secret_file = tmp_path / "creds.env"
    secret_file.write_text(f"NCLOUD_ACCESS_KEY={AK}\nNCLOUD_SECRET_KEY={SK}\n")
    secret_file.chmod(0o600)
    env = {
        "NCLOUD_ACCESS_KEY": "stale-access",
        "NCLOUD_SECRET_KEY": "stale-secret",
        "NCLUE_ENDPOINT": sim.url,
        "HOME": str(tmp_path),
    }
    args = ("run", "--policy", path, "--audit-log", "a.jsonl", "--output", "json")
    code, out, err = await cli(tmp_path, *args, "--credentials-file", str(secret_file), env=env)
    assert code == 0, err
    assert json.loads(out)["counts"]["would_delete"] == 3
    # Without the file, the stale variables are used (and refused): the file did the work.
    code, _, _ = await cli(tmp_path, *args, env=env)
    assert code == 3


@pytest.mark.parametrize("env_too", [False, True], ids=["nothing-else", "env-wins"])
async def test_ncloud_configure_in_home_is_read_last(make_sim, tmp_path, env_too):
    """~/.ncloud/configure is read when neither a file nor the environment gives keys, and
    the environment beats it."""
    sim = await make_sim(account(3))
    path = write_policy(tmp_path, policy({"all": True}))
    home = tmp_path / "home"
    env = {"NCLUE_ENDPOINT": sim.url, "HOME": str(home)}
    if env_too:
        _configure(home, AK, "a-stale-secret")
        env |= {"NCLOUD_ACCESS_KEY": AK, "NCLOUD_SECRET_KEY": SK}
    else:
        _configure(home, AK, SK)
    args = ("run", "--policy", path, "--audit-log", "a.jsonl", "--output", "json")
    code, out, err = await cli(tmp_path, *args, env=env)
    assert code == 0, err
    assert json.loads(out)["counts"]["would_delete"] == 3


# -- stdout conventions -------------------------------------------------------------------


@pytest.mark.parametrize(
    "flags", [("--output", "json"), ("--summary-json", "-")], ids=["output-json", "summary-dash"]
)
async def test_stdout_is_one_json_document(make_sim, tmp_path, flags):
    """--output json and --summary-json - make stdout one JSON summary; the table goes to
    stderr, and no file named '-' appears."""
    sim = await make_sim(account(5))
    path = write_policy(tmp_path, policy({"all": True}))
    code, out, err = await cli(
        tmp_path, "run", "--policy", path, "--audit-log", "a.jsonl", *flags, env=creds_env(sim)
    )
    assert code == 0, err
    summary = json.loads(out)
    assert summary["counts"]["would_delete"] == 5 and summary["exit_code"] == 0
    assert sorted(summary["task_ids"]["would_delete"]) == [f"t000{i}" for i in range(5)]
    assert "would delete 5, would wait for 0 busy, would keep 0" in err
    assert "exit code 0: done" in err
    assert not (tmp_path / "-").exists()


async def test_audit_log_dash_puts_only_audit_lines_on_stdout(make_sim, tmp_path):
    """--audit-log - makes every stdout line an audit record; the summary goes to stderr."""
    sim = await make_sim(account(4))
    path = write_policy(tmp_path, policy({"all": True}))
    code, out, err = await cli(
        tmp_path, "run", "--policy", path, "--apply", "--audit-log", "-", env=creds_env(sim)
    )
    assert code == 0, err
    records = [json.loads(line) for line in out.splitlines()]
    assert records[0]["event"] == "run_started" and records[-1]["event"] == "run_finished"
    assert sum(r["event"] == "deleted" for r in records) == 4
    assert "exit code 0: done" in err
    assert not (tmp_path / "-").exists()


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (
            ("--output", "json", "--audit-log", "-"),
            "--output json and --audit-log - both want stdout: choose one",
        ),
        (
            ("--summary-json", "-", "--audit-log", "-"),
            "--summary-json - and --audit-log - both want stdout: choose one",
        ),
        (
            ("--output", "json", "--summary-json", "-"),
            "--output json and --summary-json - both want stdout: choose one",
        ),
    ],
)
async def test_two_stdout_users_are_a_usage_error(make_sim, tmp_path, flags, message):
    """Two machine streams on stdout exit 2 before any request, naming both."""
    sim = await make_sim(account(3))
    path = write_policy(tmp_path, policy({"all": True}))
    code, out, err = await cli(tmp_path, "run", "--policy", path, *flags, env=creds_env(sim))
    assert code == 2
    assert err == f"nclue-cleanup: error: {message}\n"
    assert out == ""
    assert sim.state.total_requests() == 0


# -- NO_COLOR -----------------------------------------------------------------------------


def _terminal_run(tmp_path: Path, sim: Any, **env: str) -> tuple[int, str, str]:
    """A failing run (wrong secret: a log line, a warning, a red error) on a terminal."""
    path = write_policy(tmp_path, policy({"all": True}))
    return cli_on_a_terminal(
        tmp_path,
        "run",
        "--policy",
        path,
        "--audit-log",
        "a.jsonl",
        env={**creds_env(sim, "wrong"), **env},
    )


async def test_no_color_means_no_colour_on_a_terminal(make_sim, tmp_path):
    """With NO_COLOR set, no colour sequence reaches the terminal, log lines included;
    without it the same run is coloured."""
    sim = await make_sim(account(3))
    code, _, coloured = await asyncio.to_thread(_terminal_run, tmp_path, sim)
    assert code == 3 and SGR.search(coloured)
    code, out, plain = await asyncio.to_thread(_terminal_run, tmp_path, sim, NO_COLOR="1")
    assert code == 3
    assert "run_failed" in plain  # the log line is on the terminal ...
    assert "warning: limits.rate is 2000 requests/s" in unfolded(out + plain)
    assert not SGR.search(plain) and not SGR.search(out)  # ... uncoloured, like the rest


async def test_no_color_means_no_escape_sequence_at_all(make_sim, tmp_path):
    """With NO_COLOR set, the terminal gets no escape sequence of any kind."""
    sim = await make_sim(account(3))
    code, out, err = await asyncio.to_thread(_terminal_run, tmp_path, sim, NO_COLOR="1")
    assert code == 3
    assert "\x1b" not in err and "\x1b" not in out


# -- the Python API: notebooks, and no printing -------------------------------------------


@contextlib.contextmanager
def simulator_thread(state: SimState) -> Iterator[Simulator]:
    """A simulator served from its own thread (the caller's loop may be busy or blocked)."""
    box: list[Any] = []

    def serve() -> None:
        with running_in_thread(SimConfig(), state) as sim:
            box.append(sim)
            done.wait(timeout=110)

    done = threading.Event()
    thread = threading.Thread(target=serve, name="test-simulator")
    thread.start()
    while not box and thread.is_alive():
        done.wait(0.01)
    try:
        yield box[0]
    finally:
        done.set()
        thread.join(timeout=30)


async def test_run_policy_sync_inside_a_running_event_loop(tmp_path):
    """run_policy_sync called where a loop already runs (a notebook cell) completes the run."""
    asyncio.get_running_loop()  # the notebook's situation: a loop is running here
    with simulator_thread(account(4)) as sim:
        summary = run_policy_sync(
            policy({"all": True}),
            apply=True,
            settings=Settings(endpoint=sim.url, audit_log=str(tmp_path / "a.jsonl")),
            credentials=CREDS,
        )
        assert sim.state.remaining_ids() == set()
    assert summary.exit_code == 0 and summary.counts["deleted"] == 4


async def test_run_policy_sync_raises_usage_errors_in_the_caller(tmp_path):
    """Inside a running loop, a usage error reaches the caller as UsageError (not lost)."""
    with pytest.raises(UsageError, match="select"):
        run_policy_sync(
            {"version": 1, "select": {}},
            settings=Settings(endpoint="http://127.0.0.1:9/api/v1", audit_log=str(tmp_path / "a")),
            credentials=CREDS,
        )


LIBRARY_SCRIPT = textwrap.dedent(
    """
    import asyncio, json, os, sys
    from cleanup import Settings, run_policy_sync
    from cleanup.credentials import load_credentials
    from cleanup.simulator import SimConfig
    from cleanup.simulator.seed import generate_account
    from cleanup.simulator.server import Simulator, running_in_thread

    out = sys.argv[1]
    creds_file = os.path.join(out, "creds.env")
    with open(creds_file, "w") as f:
        f.write("NCLOUD_ACCESS_KEY=sim-access-key\\nNCLOUD_SECRET_KEY=sim-secret-key\\n")
    os.chmod(creds_file, 0o644)  # group- and world-readable: a warning, to the log only
    creds = load_credentials(credentials_file=creds_file)
    doc = {"version": 1, "select": {"all": True},
           "limits": {"rate": 2000, "max_deletions_percent": 100},
           "retry": {"busy_interval": "20ms", "busy_deadline": "200ms",
                     "backoff_base": "5ms", "backoff_max": "20ms"}}
    codes = []
    with running_in_thread(SimConfig(), generate_account(40, seed=3)) as sim:
        def go(**kw):
            settings = Settings(endpoint=sim.url, audit_log=os.path.join(out, "a.jsonl"))
            return run_policy_sync(doc, settings=settings, **kw).exit_code
        codes.append(go(credentials=creds))
        codes.append(go(credentials=creds, apply=True))
        async def cell():
            return go(credentials=type(creds)(creds.access_key, "wrong"), apply=True)
        codes.append(asyncio.run(cell()))
    with open(os.path.join(out, "codes.json"), "w") as f:
        json.dump(codes, f)
    """
)


def test_library_prints_nothing_when_logging_is_not_configured(tmp_path):
    """Without structlog configured, runs (dry, apply with busy tasks, refused) print nothing."""
    proc = subprocess.run(
        [sys.executable, "-c", LIBRARY_SCRIPT, str(tmp_path)],
        cwd=tmp_path,
        env=clean_env(),
        capture_output=True,
        timeout=90,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr.decode()
    assert json.loads((tmp_path / "codes.json").read_text()) in ([0, 0, 3], [0, 4, 3])
    assert proc.stdout == b""
    assert proc.stderr == b""


# -- dry runs say where their plan is ---------------------------------------------------


@pytest.mark.parametrize(("tasks", "plan_out"), [(5, True), (60, True), (60, False)])
async def test_dry_run_says_where_its_full_plan_is(make_sim, tmp_path, tasks, plan_out):
    """A dry run names its plan file and the plan show command, or says to pass --plan-out
    when rows were left out."""
    sim = await make_sim(account(tasks))
    path = write_policy(tmp_path, policy({"all": True}))
    extra = ("--plan-out", "plan.json") if plan_out else ()
    code, out, err = await cli(
        tmp_path, "run", "--policy", path, "--audit-log", "a.jsonl", *extra, env=creds_env(sim)
    )
    assert code == 0, err
    lines = out.splitlines()
    where = (
        "full plan: plan.json — nclue-cleanup plan show plan.json"
        if plan_out
        else "pass --plan-out FILE to keep the whole plan for review"
    )
    expected = f"and {tasks - 50:,} more not shown; {where}" if tasks > 50 else where
    assert expected in lines
    assert f"would delete {tasks}, would wait for 0 busy, would keep 0" in lines
    if plan_out:
        assert len(json.loads((tmp_path / "plan.json").read_text())["tasks"]) == tasks


# -- summaries that explain ---------------------------------------------------------------


async def test_summary_counts_skips_by_reason(make_sim, tmp_path):
    """The summary says which rule kept how many tasks."""
    state = account(4)
    for i in range(3):
        state.add_task(f"other-{i}", "prod-model", "completed", OLD)
    sim = await make_sim(state)
    doc = policy({"all": True}, filters={"name_glob": "exp*"}, protect={"ids": ["t0001"]})
    path = write_policy(tmp_path, doc)
    code, out, err = await cli(
        tmp_path, "run", "--policy", path, "--apply", "--audit-log", "a.jsonl", env=creds_env(sim)
    )
    assert code == 0, err
    lines = out.splitlines()
    kept = [line for line in lines if line.startswith("kept by a rule: ")]
    assert kept == ["kept by a rule: name_glob 3, protect 1"]
    assert re.fullmatch(r"  deleted +3", lines[1])


async def test_dry_run_plan_line_counts_what_it_would_keep(make_sim, tmp_path):
    """The dry run's plan line says how many tasks it would keep and why, as the summary does."""
    state = account(4)
    for i in range(3):
        state.add_task(f"other-{i}", "prod-model", "completed", OLD)
    sim = await make_sim(state)
    doc = policy({"all": True}, filters={"name_glob": "exp*"}, protect={"ids": ["t0001"]})
    path = write_policy(tmp_path, doc)
    code, out, err = await cli(
        tmp_path, "run", "--policy", path, "--audit-log", "a.jsonl", env=creds_env(sim)
    )
    assert code == 0, err
    lines = out.splitlines()
    assert "kept by a rule: name_glob 3, protect 1" in lines
    assert "would delete 3, would wait for 0 busy, would keep 4 (name_glob 3, protect 1)" in lines


def _busy_account() -> SimState:
    state = account(3)
    state.add_task("busy-one", "exp", "in_progress", OLD, busy_until=None)
    return state


BUSY_RETRY = {"busy_interval": "20ms", "busy_deadline": "300ms"}


async def test_still_busy_tasks_are_named(make_sim, tmp_path):
    """--apply names the task still busy at the busy deadline, and exits 4."""
    sim = await make_sim(_busy_account())
    path = write_policy(tmp_path, policy({"all": True}, retry=BUSY_RETRY))
    code, out, err = await cli(
        tmp_path, "run", "--policy", path, "--apply", "--audit-log", "a.jsonl", env=creds_env(sim)
    )
    assert code == 4, err
    lines = out.splitlines()
    at = lines.index("still busy at the busy deadline: 1")
    assert lines[at + 1].split()[:2] == ["busy-one", "exp"]
    assert re.search(r"^  still_busy +1$", out, re.MULTILINE)


async def test_dry_run_summary_says_it_would_wait_for_busy_tasks(make_sim, tmp_path):
    """A dry run's summary counts a busy task as 'wait (busy)' and names it; it is neither
    'still_busy' (exit 4's word) nor 'kept by a rule'."""
    sim = await make_sim(_busy_account())
    path = write_policy(tmp_path, policy({"all": True}, retry=BUSY_RETRY))
    code, out, err = await cli(
        tmp_path, "run", "--policy", path, "--audit-log", "a.jsonl", env=creds_env(sim)
    )
    assert code == 0, err
    assert "would delete 3, would wait for 1 busy, would keep 0" in out.splitlines()
    assert "still_busy" not in out and "still busy" not in out
    assert "kept by a rule" not in out
    assert re.search(r"^  wait \(busy\) +1$", out, re.MULTILINE), out
    lines = out.splitlines()
    at = lines.index("would wait (busy): 1")
    assert lines[at + 1].split()[:2] == ["busy-one", "exp"]


async def test_failed_tasks_are_named_first_few(make_sim, tmp_path):
    """Failed tasks are named (the first five) and the rest are counted toward --summary-json."""
    sim = await make_sim(account(7), truncated_json=1.0, hostile_routes=frozenset({"delete_task"}))
    path = write_policy(tmp_path, policy({"all": True}))
    code, out, err = await cli(
        tmp_path,
        "run",
        "--policy",
        path,
        "--apply",
        "--audit-log",
        "a.jsonl",
        "--summary-json",
        "s.json",
        env=creds_env(sim),
    )
    assert code == 1, err
    lines = out.splitlines()
    at = lines.index("failed: 7")
    more = lines.index("  and 2 more (all in --summary-json)")
    named = re.findall(r"^  (t000\d)  exp  DELETE /tasks/\1: ", "\n".join(lines[at:more]), re.M)
    assert len(set(named)) == 5 and set(named) <= {f"t000{i}" for i in range(7)}
    notes = json.loads((tmp_path / "s.json").read_text())["notes"]["failed"]
    assert sorted(n["task_id"] for n in notes) == [f"t000{i}" for i in range(7)]


async def _interrupted(
    sim: Any, tmp_path: Path, ready: Callable[[], bool], *args: str
) -> tuple[int, str, str]:
    """``nclue-cleanup run ARGS --audit-log a.jsonl`` in ``tmp_path``, sent SIGINT once
    ``ready()`` (polled, for at most 30 s): (exit code, stdout, stderr)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "cleanup",
        "run",
        *args,
        "--audit-log",
        "a.jsonl",
        cwd=tmp_path,
        env=clean_env(**creds_env(sim)),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    for _ in range(600):
        if ready():
            break
        await asyncio.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_interrupted_tasks_are_counted_apart_from_rule_skips(make_sim, tmp_path):
    """After SIGINT, the summary counts 'interrupted' on its own row and line; 'skipped'
    holds only rule skips."""
    state = account(300)
    state.add_task("keep-0", "prod", "completed", OLD)
    sim = await make_sim(state)
    doc = policy({"all": True}, filters={"name_glob": "exp"}, limits={"rate": 20})
    path = write_policy(tmp_path, doc)
    code, out, err = await _interrupted(
        sim,
        tmp_path,
        lambda: sim.state.count(method="DELETE") >= 3,
        "--policy",
        path,
        "--apply",
        "--shutdown-grace",
        "2",
    )
    assert code == 130, err
    deleted = len(sim.state.deleted)
    never = 300 - deleted
    assert 3 <= deleted < 300
    lines = out.splitlines()
    assert re.search(r"^  skipped +1$", out, re.MULTILINE), out
    assert re.search(rf"^  interrupted +{never:,}$", out, re.MULTILINE), out
    assert "kept by a rule: name_glob 1" in lines
    assert sum(line.startswith("interrupted: ") for line in lines) == 1
    assert (
        f"interrupted: {never:,} tasks never reached (interrupted {never:,}); "
        "running the policy again picks them up"
    ) in unfolded(out)


async def test_dry_run_interrupted_while_listing_prints_no_empty_plan(make_sim, tmp_path):
    """SIGINT during a dry run's listing exits 130 without an empty 'would delete 0' plan."""
    sim = await make_sim(account(3000), latency_s=0.3)
    path = write_policy(tmp_path, policy({"all": True}, limits={"concurrency": 1}))
    code, out, err = await _interrupted(
        sim, tmp_path, lambda: sim.state.count(route="list_tasks") >= 2, "--policy", path
    )
    assert code == 130, err
    assert sim.state.count(route="list_tasks") < 30  # stopped mid-listing
    assert "exit code 130: interrupted (SIGINT)" in out.splitlines()
    assert "would delete" not in out and "what --apply would do" not in out
