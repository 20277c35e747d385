"""Trust nothing (issue 12), through ``python -m cleanup`` as users run it.

The points of issue 12 that only a process shows: exit codes and stderr, signals, a
disk that fills up, pipes that close, files that are not what they seem, secrets in
the wrong place. The simulator runs in the test's event loop on loopback; the CLI runs
in a subprocess (``cli()`` from conftest, or ``spawn`` here when the test needs the
process itself: signals, resource limits, its own stdout pipe).
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import itertools
import json
import os
import re
import resource
import signal
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from cleanup.auditview import verify

from .conftest import AK, SK, account, clean_env, cli, policy, read_audit

SIGNATURE_B64 = re.compile(r"[A-Za-z0-9+/]{43}=")
"""What a base64 HMAC-SHA256 (a signature v2 value) looks like."""
SIGNED_HEADER_NAMES = ("x-ncp-apigw-signature-v2", "x-ncp-iam-access-key")


def api_env(sim: Any, **extra: Any) -> dict[str, Any]:
    return {"NCLOUD_ACCESS_KEY": AK, "NCLOUD_SECRET_KEY": SK, "NCLUE_ENDPOINT": sim.url, **extra}


def write_policy(tmp_path: Path, doc: dict[str, Any], name: str = "policy.yaml") -> str:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(doc))
    return str(path)


def no_secret_shown(text: str) -> bool:
    lowered = text.lower()
    return (
        SK not in text
        and not SIGNATURE_B64.search(text)
        and not any(name in lowered for name in SIGNED_HEADER_NAMES)
    )


async def spawn(
    *args: str,
    env: dict[str, Any],
    prelude: str | None = None,
    fsize: int | None = None,
    stdout: Any = asyncio.subprocess.PIPE,
) -> asyncio.subprocess.Process:
    """Start ``python -m cleanup ARGS`` (after ``prelude``, if given), optionally with a
    file size limit (RLIMIT_FSIZE, SIGXFSZ ignored: a full disk for regular files)."""

    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        if fsize is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))

    if prelude is None:
        command = [sys.executable, "-m", "cleanup", *args]
    else:
        code = prelude + "\nimport runpy, sys\nsys.argv = ['cleanup', *sys.argv[1:]]\n"
        code += "runpy.run_module('cleanup', run_name='__main__', alter_sys=True)\n"
        command = [sys.executable, "-c", code, *args]
    environment = clean_env(**env)
    if fsize is not None:  # coverage's own data file could not be written either
        environment = {k: v for k, v in environment.items() if not k.startswith("COVERAGE")}
    return await asyncio.create_subprocess_exec(
        *command,
        env=environment,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=stdout,
        stderr=asyncio.subprocess.PIPE,
        preexec_fn=limit,
    )


async def finish(proc: asyncio.subprocess.Process) -> tuple[int, str, str]:
    out, err = await asyncio.wait_for(proc.communicate(), timeout=90)
    assert proc.returncode is not None
    return proc.returncode, (out or b"").decode(), err.decode()


async def until(condition: Any) -> None:
    """Wait (polling the event loop, so the simulator keeps serving) until ``condition()``."""
    for _ in range(2000):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition never became true")


def chained(lines: list[bytes]) -> bool:
    """Whether each whole line's prev_sha256 is the sha256 of the line before it."""
    for before, line in itertools.pairwise(lines):
        if json.loads(line)["prev_sha256"] != hashlib.sha256(before).hexdigest():
            return False
    return True


# -- 2. hand-edited plans, as users meet them -------------------------------------------


async def test_cli_refuses_a_plan_with_an_id_added(make_sim, tmp_path):
    """Point 2: run --apply --plan on a plan with an ID added exits 2, zero DELETEs."""
    sim = await make_sim(account(4))
    env = api_env(sim)
    pol = write_policy(tmp_path, policy({"all": True}))
    plan = tmp_path / "plan.json"
    audit = str(tmp_path / "audit.jsonl")
    code, _, err = await cli(
        "run", "--policy", pol, "--plan-out", str(plan), "--audit-log", audit, env=env
    )
    assert code == 0, err
    document = json.loads(plan.read_text())
    extra = dict(document["tasks"][0], task_id="t9999")
    document["tasks"].append(extra)
    document["counts"]["delete"] += 1
    plan.write_text(json.dumps(document))
    before = sim.state.total_requests()
    code, _, err = await cli(
        "run", "--policy", pol, "--apply", "--plan", str(plan), "--audit-log", audit, env=env
    )
    assert code == 2
    assert "edited" in err and "Traceback" not in err
    assert sim.state.total_requests() == before
    assert sim.state.count(method="DELETE") == 0


# -- 7. a wrong base path ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("select", "body"), [({"ids": ["t0001"]}, "json"), ({"all": True}, "html")]
)
async def test_cli_wrong_base_path_exits_2_endpoint_not_found(make_sim, tmp_path, select, body):
    """Point 7: --endpoint .../api/v2 exits 2 "endpoint or route not found", no DELETE."""
    sim = await make_sim(account(3), route_404_body=body)
    env = api_env(sim, NCLUE_ENDPOINT=sim.base_url + "/api/v2")
    code, out, err = await cli(
        "run",
        "--policy",
        write_policy(tmp_path, policy(select)),
        "--apply",
        "--audit-log",
        str(tmp_path / "audit.jsonl"),
        env=env,
    )
    assert code == 2, err
    assert "endpoint or route not found" in err
    assert "already_absent" not in out.replace("already_absent 0", "")
    assert sim.state.count(method="DELETE") == 0


# -- 8. a redirect on DELETE ----------------------------------------------------------------


async def test_cli_redirected_delete_is_never_summarised_as_deleted(make_sim, tmp_path):
    """Point 8: a 307 on every DELETE: the JSON summary counts no deleted task, exit 1."""
    sim = await make_sim(
        account(3),
        redirect_routes=frozenset({"delete_task"}),
        redirect_location="http://127.0.0.1:9/{path}",
    )
    code, out, err = await cli(
        "run",
        "--policy",
        write_policy(tmp_path, policy({"all": True})),
        "--apply",
        "--output",
        "json",
        "--audit-log",
        str(tmp_path / "audit.jsonl"),
        env=api_env(sim),
    )
    summary = json.loads(out)
    assert code == 1, err
    assert summary["counts"]["deleted"] == 0
    assert summary["counts"]["failed"] == 3
    assert len(sim.state.tasks) == 3


# -- 10. a full disk -------------------------------------------------------------------------


async def test_full_disk_stops_deletes_at_the_first_failed_audit_line(make_sim, tmp_path):
    """Point 10: a short audit write exits 1 naming the path; no DELETE follows it."""
    sim = await make_sim(account(60))
    audit = tmp_path / "audit.jsonl"
    pol = write_policy(tmp_path, policy({"all": True}, limits={"concurrency": 2}))
    code, _, err = await cli("run", "--policy", pol, "--audit-log", str(audit), env=api_env(sim))
    assert code == 0, err
    room = audit.stat().st_size + 3000  # run_started and a few task lines, then a torn one
    proc = await spawn(
        "run", "--policy", pol, "--apply", "--audit-log", str(audit), env=api_env(sim), fsize=room
    )
    code, _, err = await finish(proc)
    assert code == 1, err
    assert str(audit) in err
    raw = audit.read_bytes()
    assert len(raw) <= room
    whole = [line for line in raw.split(b"\n")[:-1]]
    sent_lines = sum(json.loads(line)["event"] == "deleting" for line in whole)
    assert sim.state.count(method="DELETE") <= sent_lines
    assert sim.state.count(method="DELETE") < 60
    assert chained(whole)


async def test_full_disk_ends_with_one_line_and_no_traceback(make_sim, tmp_path):
    """Point 10: a full disk mid-run ends with one clear stderr line, never a traceback."""
    sim = await make_sim(account(60))
    audit = tmp_path / "audit.jsonl"
    pol = write_policy(tmp_path, policy({"all": True}, limits={"concurrency": 2}))
    proc = await spawn(
        "run", "--policy", pol, "--apply", "--audit-log", str(audit), env=api_env(sim), fsize=3000
    )
    code, _, err = await finish(proc)
    assert code == 1
    assert "Traceback" not in err and "unhandled exception" not in err, err[-3000:]
    assert '"task_crashed"' not in err


async def test_next_run_closes_off_a_torn_audit_line_and_chains_on(make_sim, tmp_path):
    """Point 10: after a torn line, the next run on the file writes a chain that verifies."""
    sim = await make_sim(account(40))
    audit = tmp_path / "audit.jsonl"
    pol = write_policy(tmp_path, policy({"all": True}, limits={"concurrency": 2}))
    proc = await spawn(
        "run", "--policy", pol, "--apply", "--audit-log", str(audit), env=api_env(sim), fsize=2500
    )
    code, _, err = await finish(proc)
    assert code == 1, err
    torn = audit.read_bytes()
    assert not torn.endswith(b"\n")  # the limit cut a line short
    code, _, err = await cli(
        "run", "--policy", pol, "--apply", "--audit-log", str(audit), env=api_env(sim)
    )
    assert code == 0, err
    lines = audit.read_bytes().split(b"\n")[:-1]
    last_torn = torn.split(b"\n")[-1]
    resumed = lines.index(last_torn) + 1
    assert json.loads(lines[resumed])["event"] == "run_started"
    assert json.loads(lines[resumed])["prev_sha256"] == hashlib.sha256(last_torn).hexdigest()
    assert chained(lines[resumed:])
    assert json.loads(lines[-1])["event"] == "run_finished"


# -- 11. crashes never print signed headers ------------------------------------------------------

CRASH_IN_SIGNING = """
import cleanup.signing, cleanup.transport
_real = cleanup.signing.signed_headers
def _signed_then_crash(*args, **kwargs):
    headers = _real(*args, **kwargs)  # a local holding the signature and the access key
    raise RuntimeError("a bug after signing")
cleanup.transport.signed_headers = _signed_then_crash
"""


@pytest.mark.parametrize("verbose", [False, True])
async def test_crash_after_signing_prints_no_signed_headers(make_sim, tmp_path, verbose):
    """Point 11: a crash with signed headers in a local never shows them, -v or not."""
    sim = await make_sim(account(2))
    flags = ["-v"] if verbose else []
    proc = await spawn(
        *flags,
        "run",
        "--policy",
        write_policy(tmp_path, policy({"all": True})),
        "--apply",
        "--audit-log",
        str(tmp_path / "audit.jsonl"),
        env=api_env(sim),
        prelude=CRASH_IN_SIGNING,
    )
    code, out, err = await finish(proc)
    assert code != 0
    assert "a bug after signing" in err  # the crash really happened and was reported
    assert no_secret_shown(out + err), err[-3000:]
    assert SK not in (tmp_path / "audit.jsonl").read_text()
    if not verbose:
        assert "Traceback" not in err and '"exception"' not in err


# -- 12. --ids-from pointed at secrets ----------------------------------------------------------


async def test_ids_from_the_secret_key_file_sends_nothing(make_sim, tmp_path):
    """Point 12: --ids-from a file holding the secret key: exit 2, no request, not shown."""
    sim = await make_sim(account(2))
    secret = tmp_path / "secret_key"
    secret.write_text(SK + "\n")
    audit = tmp_path / "audit.jsonl"
    code, out, err = await cli(
        "run",
        "--policy",
        write_policy(tmp_path, policy({"ids": []})),
        "--apply",
        "--ids-from",
        str(secret),
        "--audit-log",
        str(audit),
        env=api_env(sim),
    )
    assert code == 2
    assert sim.state.total_requests() == 0
    assert SK not in out + err
    assert not audit.exists() or SK not in audit.read_text()


@pytest.mark.parametrize("via", ["file", "stdin"])
async def test_ids_from_a_key_value_credentials_file_is_not_echoed(make_sim, tmp_path, via):
    """Point 12: a KEY=value credentials file as IDs: exit 2, line numbers only, no secret."""
    sim = await make_sim(account(2))
    creds = tmp_path / "creds.env"
    creds.write_text(f"NCLOUD_ACCESS_KEY={AK}\nNCLOUD_SECRET_KEY={SK}\n")
    creds.chmod(0o600)
    source = str(creds) if via == "file" else "-"
    code, out, err = await cli(
        "run",
        "--policy",
        write_policy(tmp_path, policy({"ids": []})),
        "--credentials-file",
        str(creds),
        "--ids-from",
        source,
        "--audit-log",
        str(tmp_path / "audit.jsonl"),
        env={"NCLUE_ENDPOINT": sim.url},
        stdin=creds.read_bytes() if via == "stdin" else None,
    )
    assert code == 2
    assert "line 1" in err
    assert SK not in out + err and "NCLOUD_SECRET_KEY=" not in err
    assert sim.state.total_requests() == 0


@pytest.mark.parametrize("where", ["ids_file", "ids"])
async def test_policy_selection_holding_the_secret_sends_nothing(make_sim, tmp_path, where):
    """Beyond the list: select.ids_file naming the secret key file (or the secret pasted
    into select.ids): exit 2, no request, the secret never shown or logged."""
    sim = await make_sim(account(2))
    secret = tmp_path / "secret_key"
    secret.write_text(SK + "\n")
    audit = tmp_path / "audit.jsonl"
    select = {"ids_file": str(secret)} if where == "ids_file" else {"ids": [SK]}
    code, out, err = await cli(
        "run",
        "--policy",
        write_policy(tmp_path, policy(select)),
        "--apply",
        "--audit-log",
        str(audit),
        env=api_env(sim),
    )
    assert code == 2
    assert sim.state.total_requests() == 0
    assert SK not in out + err
    assert not audit.exists() or SK not in audit.read_text()


# -- 13. hostile task names on the terminal -----------------------------------------------------


@pytest.mark.parametrize("apply", [False, True])
async def test_hostile_task_names_are_shown_escaped(make_sim, tmp_path, apply):
    """Point 13: markup-like and ANSI names never crash and reach the output escaped."""
    state = account(0)
    names = ("exp-[/x]", "exp-[bold]b", "exp-\x1b[31mred\x1b[0m", "exp-" + "n" * 1_000_000)
    for n, name in enumerate(names):
        state.add_task(f"h{n}", name, "failed")
    sim = await make_sim(state)
    flags = ["--apply", "--yes"] if apply else []
    audit = tmp_path / "audit.jsonl"
    code, out, err = await cli(
        "run",
        "--policy",
        write_policy(tmp_path, policy({"all": True})),
        *flags,
        "--audit-log",
        str(audit),
        env=api_env(sim),
    )
    shown = out + err
    assert code == 0, err[-2000:]
    assert "\x1b" not in shown
    assert "Traceback" not in shown
    if not apply:
        assert "exp-[/x]" in shown and "exp-[bold]b" in shown
    assert len(shown) < 100_000  # the 1 MB name is cut
    cut = [r for r in read_audit(audit) if r.get("task_id") == "h3"]
    assert cut and all(r["task_name_truncated"] is True for r in cut)


# -- 14. policies that explode -------------------------------------------------------------------


def _alias_bomb() -> str:
    lines = ["version: 1", "select: {all: true}", 'x0: &x0 ["lol lol lol lol lol lol lol"]']
    for n in range(1, 25):
        lines.append(f"x{n}: &x{n} [" + ", ".join([f"*x{n - 1}"] * 9) + "]")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("kind", ["alias-bomb", "over-1mb"])
async def test_cli_refuses_exploding_policies_before_any_request(make_sim, tmp_path, kind):
    """Point 14: an alias bomb or a policy over 1 MB exits 2 with one line, no request."""
    sim = await make_sim(account(2))
    path = tmp_path / "policy.yaml"
    if kind == "alias-bomb":
        path.write_text(_alias_bomb())
    else:
        path.write_text("version: 1\nselect: {all: true}\n# " + "x" * 1_200_000 + "\n")
    for command in (["run", "--policy", str(path), "--apply"], ["validate", "--policy", str(path)]):
        code, _, err = await cli(*command, env=api_env(sim))
        assert code == 2, err[-2000:]
        assert "Traceback" not in err and "MemoryError" not in err
        assert len(err) < 2000
    assert sim.state.total_requests() == 0


async def test_cli_gzip_bomb_fails_closed_without_a_traceback(make_sim, tmp_path):
    """Point 14: a gzip bomb on the listing fails closed (exit 1), no DELETE, no traceback."""
    sim = await make_sim(account(3), gzip_bomb_bytes=30_000_000)
    code, _, err = await cli(
        "run",
        "--policy",
        write_policy(tmp_path, policy({"all": True}, retry={"max_attempts": 2})),
        "--apply",
        "--audit-log",
        str(tmp_path / "audit.jsonl"),
        env=api_env(sim),
    )
    assert code == 1, err
    assert "Traceback" not in err and "MemoryError" not in err
    assert sim.state.count(method="DELETE") == 0


# -- 15. signals and a closed stdout --------------------------------------------------------------


@pytest.mark.parametrize(("sig", "expected"), [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
async def test_signal_during_a_slow_listing_stops_it_cleanly(make_sim, tmp_path, sig, expected):
    """Point 15: SIGTERM / SIGHUP during the listing stop it: exit 143 / 129, run_finished,
    no DELETE, and the listing is left unfinished (no page read after the stop)."""
    sim = await make_sim(account(6000), latency_s=0.3)
    audit = tmp_path / "audit.jsonl"
    proc = await spawn(
        "run",
        "--policy",
        write_policy(tmp_path, policy({"all": True})),
        "--apply",
        "--audit-log",
        str(audit),
        "--shutdown-grace",
        "5",
        env=api_env(sim),
    )
    await until(lambda: sim.state.count(route="list_tasks") >= 1)
    proc.send_signal(sig)
    code, _, err = await finish(proc)
    assert code == expected, err[-2000:]
    assert "Traceback" not in err
    assert sim.state.count(method="DELETE") == 0
    assert sim.state.count(route="list_tasks") < 60  # 6000 tasks need 60 pages
    records = read_audit(audit)
    assert records[-1]["event"] == "run_finished"
    assert verify(audit).ok


async def _head_one(sim: Any, tmp_path: Path) -> tuple[bytes, int, str]:
    """Run with ``--audit-log -`` into a pipe whose reader takes one read and leaves."""
    read_end, write_end = os.pipe()
    proc = await spawn(
        "run",
        "--policy",
        write_policy(tmp_path, policy({"all": True})),
        "--apply",
        "--audit-log",
        "-",
        env=api_env(sim),
        stdout=write_end,
    )
    os.close(write_end)
    first = await asyncio.to_thread(os.read, read_end, 65536)
    os.close(read_end)  # `head -1` has its line and goes away
    code, _, err = await finish(proc)
    return first, code, err


async def test_closed_stdout_audit_pipe_stops_the_run(make_sim, tmp_path):
    """Point 15: `--audit-log - | head -1` stops the run: exit 1, the pipe named."""
    sim = await make_sim(account(300), latency_s=0.02)
    first, code, err = await _head_one(sim, tmp_path)
    assert json.loads(first.split(b"\n")[0])["event"] == "run_started"
    assert code == 1, err[-2000:]
    assert "pipe" in err.lower()
    assert sim.state.count(method="DELETE") < 300


async def test_closed_stdout_audit_pipe_ends_without_a_traceback(make_sim, tmp_path):
    """Point 15: `--audit-log - | head -1` ends with no traceback on stderr."""
    sim = await make_sim(account(300), latency_s=0.02)
    _, code, err = await _head_one(sim, tmp_path)
    assert code == 1
    assert "Traceback" not in err and "BrokenPipeError" not in err, err[-3000:]


# -- 16. audit paths that are not what they seem ---------------------------------------------------


def _audit_targets(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "a-directory").mkdir()
    target = tmp_path / "elsewhere.jsonl"
    target.write_text("")
    (tmp_path / "link.jsonl").symlink_to(target)
    return {
        "directory": str(tmp_path / "a-directory"),
        "missing-directory": str(tmp_path / "no-such-dir" / "audit.jsonl"),
        "dev-full": "/dev/full",
        "symlink": str(tmp_path / "link.jsonl"),
    }


@pytest.mark.parametrize("where", ["directory", "missing-directory", "dev-full", "symlink"])
async def test_unusable_audit_path_exits_2_before_any_request(make_sim, tmp_path, where):
    """Point 16: an audit path that is a directory, missing, /dev/full or a symlink: exit 2
    naming it, zero requests, and a symlink's target is never written."""
    sim = await make_sim(account(2))
    path = _audit_targets(tmp_path)[where]
    code, _, err = await cli(
        "run",
        "--policy",
        write_policy(tmp_path, policy({"all": True})),
        "--apply",
        "--audit-log",
        path,
        env=api_env(sim),
    )
    assert code == 2, err[-2000:]
    assert path in err
    assert "Traceback" not in err
    assert sim.state.total_requests() == 0
    assert (tmp_path / "elsewhere.jsonl").read_text() == ""


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
async def test_read_only_audit_directory_exits_2(make_sim, tmp_path):
    """Point 16: an audit log in a read-only directory: exit 2 naming it, no request."""
    sim = await make_sim(account(2))
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    path = str(locked / "audit.jsonl")
    code, _, err = await cli(
        "run",
        "--policy",
        write_policy(tmp_path, policy({"all": True})),
        "--audit-log",
        path,
        env=api_env(sim),
    )
    assert code == 2 and path in err
    assert sim.state.total_requests() == 0


async def test_second_run_on_a_locked_audit_file_exits_2(make_sim, tmp_path):
    """Point 16: while one run writes an audit file, a second run on it exits 2 saying so."""
    sim = await make_sim(account(400), latency_s=0.05)
    audit = tmp_path / "audit.jsonl"
    pol = write_policy(tmp_path, policy({"all": True}))
    first = await spawn(
        "run", "--policy", pol, "--apply", "--audit-log", str(audit), env=api_env(sim)
    )
    await until(lambda: sim.state.count(route="list_tasks") >= 1)
    code, _, err = await cli("run", "--policy", pol, "--audit-log", str(audit), env=api_env(sim))
    assert code == 2, err[-2000:]
    assert "another run" in err and str(audit) in err
    code, _, err = await finish(first)
    assert code == 0, err[-2000:]
    assert verify(audit).ok
    assert [r["event"] for r in read_audit(audit)].count("run_started") == 1


async def test_audit_file_locked_by_another_process_is_refused(make_sim, tmp_path):
    """Point 16: an audit file another process holds locked is refused, zero requests."""
    sim = await make_sim(account(2))
    audit = tmp_path / "audit.jsonl"
    with audit.open("ab") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        code, _, err = await cli(
            "run",
            "--policy",
            write_policy(tmp_path, policy({"all": True})),
            "--audit-log",
            str(audit),
            env=api_env(sim),
        )
    assert code == 2 and "another run" in err
    assert sim.state.total_requests() == 0


# -- 17. a secret that is not text ---------------------------------------------------------


@pytest.mark.parametrize("via", ["environment", "credentials-file"])
async def test_secret_with_an_invalid_utf8_byte_exits_2(make_sim, tmp_path, via):
    """Point 17: a secret key with an invalid UTF-8 byte exits 2, no traceback, no request."""
    sim = await make_sim(account(2))
    bad = b"sim-secret-\xffkey"
    args = ["run", "--policy", write_policy(tmp_path, policy({"all": True}))]
    env: dict[str, Any] = {"NCLUE_ENDPOINT": sim.url}
    if via == "environment":
        env |= {"NCLOUD_ACCESS_KEY": AK, "NCLOUD_SECRET_KEY": bad}
    else:
        creds = tmp_path / "creds.env"
        creds.write_bytes(b"NCLOUD_ACCESS_KEY=" + AK.encode() + b"\nNCLOUD_SECRET_KEY=" + bad)
        creds.chmod(0o600)
        args += ["--credentials-file", str(creds)]
    proc = await spawn(*args, "--audit-log", str(tmp_path / "audit.jsonl"), env=env)
    code, _, err = await finish(proc)
    assert code == 2, err[-2000:]
    assert "Traceback" not in err and "UnicodeEncodeError" not in err
    assert "sim-secret-" not in err
    assert sim.state.total_requests() == 0
