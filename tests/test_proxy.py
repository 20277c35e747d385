"""HTTPS_PROXY / NO_PROXY: the CLI reaches a TLS API through a real HTTP CONNECT proxy.

tinyproxy (Debian's package) runs on a loopback port; the simulator serves HTTPS with a
self-signed certificate for 127.0.0.1 that the client trusts through SSL_CERT_FILE.
"""

from __future__ import annotations

import socket
import ssl
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from aiohttp import web

from cleanup.simulator import SimConfig, Simulator

from .conftest import AK, SK, account, cli, free_port, policy, required_binary

PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy")


@dataclass(frozen=True, slots=True)
class Proxy:
    """A running CONNECT proxy and the file its log lines go to."""

    url: str
    log: Path

    def connects(self) -> list[str]:
        return [line for line in self.log.read_text().splitlines() if "CONNECT 127.0.0.1:" in line]


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate (and key) for 127.0.0.1 and localhost, made with openssl."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            required_binary("openssl"),
            *("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1"),
            *("-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key


@pytest.fixture
def proxy(tmp_path: Path) -> Iterator[Proxy]:
    """tinyproxy on a free loopback port, accepting loopback clients, stopped after the test."""
    port = free_port()
    config = tmp_path / "tinyproxy.conf"
    config.write_text(
        f"Port {port}\nListen 127.0.0.1\nAllow 127.0.0.1\nTimeout 60\nMaxClients 20\n"
        "LogLevel Connect\n"
    )
    log = tmp_path / "tinyproxy.log"
    with log.open("w") as sink:
        proc = subprocess.Popen(
            [required_binary("tinyproxy"), "-d", "-c", str(config)], stdout=sink, stderr=sink
        )
    try:
        for _ in range(200):
            assert proc.poll() is None, log.read_text()
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        else:
            pytest.fail("tinyproxy did not start listening")
        yield Proxy(f"http://127.0.0.1:{port}", log)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
async def tls_sim(certificate: tuple[Path, Path]) -> AsyncIterator[tuple[Simulator, str]]:
    """The simulator with 20 deletable tasks, served over HTTPS on a loopback port."""
    sim = Simulator(SimConfig(), account(20))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*map(str, certificate))
    runner = web.AppRunner(sim.app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port, ssl_context=context).start()
    try:
        yield sim, f"https://127.0.0.1:{port}/api/v1"
    finally:
        await runner.cleanup()


async def _run(tmp_path: Path, endpoint: str, cert: Path, **env: str) -> tuple[int, str, str]:
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(policy({"all": True}, limits={"max_deletions_percent": 100})))
    base = {
        "NCLUE_ENDPOINT": endpoint,
        "NCLOUD_ACCESS_KEY": AK,
        "NCLOUD_SECRET_KEY": SK,
        "SSL_CERT_FILE": str(cert),
        **env,
    }
    args = ["run", "--policy", str(path), "--apply", "--audit-log", str(tmp_path / "audit.jsonl")]
    return await cli(*args, env=base)


@pytest.fixture(autouse=True)
def _no_inherited_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Proxy settings of the machine running the tests never leak into the CLI under test."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)


async def test_https_proxy_carries_every_request_through_connect(
    tmp_path: Path, proxy: Proxy, tls_sim: tuple[Simulator, str], certificate: tuple[Path, Path]
) -> None:
    """With HTTPS_PROXY set, the run tunnels through the proxy (CONNECT) and deletes the tasks."""
    sim, endpoint = tls_sim
    code, _, err = await _run(tmp_path, endpoint, certificate[0], HTTPS_PROXY=proxy.url)
    assert code == 0, err
    assert sim.state.tasks == {}
    port = endpoint.split(":")[2].split("/")[0]
    assert [line for line in proxy.connects() if f"CONNECT 127.0.0.1:{port} " in line]


async def test_no_proxy_bypasses_the_proxy(
    tmp_path: Path, proxy: Proxy, tls_sim: tuple[Simulator, str], certificate: tuple[Path, Path]
) -> None:
    """NO_PROXY=127.0.0.1 sends the requests straight to the API, never to the proxy."""
    sim, endpoint = tls_sim
    code, _, err = await _run(
        tmp_path, endpoint, certificate[0], HTTPS_PROXY=proxy.url, NO_PROXY="127.0.0.1"
    )
    assert code == 0, err
    assert sim.state.tasks == {}
    assert proxy.connects() == []


async def test_the_certificate_is_really_checked(
    tmp_path: Path, tls_sim: tuple[Simulator, str]
) -> None:
    """Without SSL_CERT_FILE naming the self-signed certificate the run fails: TLS is verified."""
    sim, endpoint = tls_sim
    other = tmp_path / "empty.pem"
    other.write_text("")
    code, _, _ = await _run(tmp_path, endpoint, other)
    assert code != 0
    assert len(sim.state.tasks) == 20
