"""systemd integration: the notify protocol (READY, WATCHDOG, RELOADING, STOPPING) against a fake NOTIFY_SOCKET,
and `systemd-analyze verify` on the shipped unit files."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_ops_helpers import Daemon, NotifySocket, free_port

from proxyd.systemd import Notifier, monotonic_usec, watchdog_interval

REPO = Path(__file__).resolve().parent.parent
UNITS = REPO / "systemd"


@pytest.fixture
def notify_socket(tmp_path: Path):
    sock = NotifySocket(tmp_path)
    yield sock
    sock.close()


def _config(tmp_path: Path, port: int, extra: str = "") -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(f'host: "127.0.0.1"\nport: {port}\napi-keys: ["k-ops-test"]\n{extra}')
    return path


# ------------------------------------------------------------------------------------------ unit level


def test_watchdog_interval_is_half_and_respects_pid() -> None:
    assert watchdog_interval({"WATCHDOG_USEC": "30000000"}) == 15.0
    assert watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}) == 15.0
    assert watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}) is None
    assert watchdog_interval({}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "0"}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "soon"}) is None


def test_monotonic_usec_is_clock_monotonic() -> None:
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    assert before <= monotonic_usec() <= before + 5_000_000


@pytest.mark.parametrize("abstract", [False, True], ids=["path", "abstract"])
async def test_notifier_sends_datagrams(tmp_path: Path, abstract: bool) -> None:
    listener = NotifySocket(tmp_path, abstract=abstract)
    try:
        notifier = Notifier(listener.address)
        assert notifier.enabled
        assert notifier.ready("serving")
        message = await listener.expect("READY", "1", within=2)
        assert message["STATUS"] == "serving"
        assert notifier.reloading()
        message = await listener.expect("RELOADING", "1", within=2)
        assert int(message["MONOTONIC_USEC"]) > 0
        assert notifier.notify("STATUS=two\nlines")  # a newline cannot inject another assignment
        message = await listener.expect("STATUS", "two lines", within=2)
        assert "lines" not in message
        await notifier.close()
    finally:
        listener.close()


def test_notifier_without_socket_is_a_no_op() -> None:
    notifier = Notifier("")
    assert not notifier.enabled
    assert not notifier.ready("x")


def test_notifier_survives_a_vanished_socket(tmp_path: Path) -> None:
    notifier = Notifier(str(tmp_path / "gone.sock"))
    assert notifier.enabled
    assert not notifier.notify("READY=1")  # logged, not raised


# ------------------------------------------------------------------------------ the daemon, for real


async def test_daemon_speaks_the_notify_protocol(tmp_path: Path, notify_socket: NotifySocket) -> None:
    port = free_port()
    # `exec` keeps the shell's pid, so WATCHDOG_PID can name the daemon before it exists, as systemd does.
    daemon = Daemon(_config(tmp_path, port), env={**notify_socket.env, "WATCHDOG_USEC": "200000"},
                    wrapper=["/bin/sh", "-c", 'WATCHDOG_PID=$$ exec "$@"', "sh"])
    await daemon.start()
    try:
        ready = await notify_socket.expect("READY", "1")
        assert f"127.0.0.1:{port}" in ready["STATUS"]
        # Listening when READY=1 arrives: a connection succeeds at once.
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            pass
        first = await notify_socket.expect("WATCHDOG", "1")
        await notify_socket.expect("WATCHDOG", "1", after=notify_socket.messages.index(first) + 1, within=5)

        marker = len(notify_socket.messages)
        before = monotonic_usec()
        daemon.signal(signal.SIGHUP)
        reloading = await notify_socket.expect("RELOADING", "1", after=marker)
        assert int(reloading["MONOTONIC_USEC"]) >= before
        reloaded = await notify_socket.expect("READY", "1", after=notify_socket.messages.index(reloading) + 1)
        assert "STATUS" in reloaded

        marker = len(notify_socket.messages)
        daemon.signal(signal.SIGTERM)
        stopping = await notify_socket.expect("STOPPING", "1", after=marker)
        assert "stopping" in stopping["STATUS"]
        assert await daemon.wait() == 0
    finally:
        await daemon.kill()
    events = [line["event"] for line in daemon.lines()]
    assert "systemd watchdog enabled" in events


async def test_watchdog_meant_for_another_pid_is_not_fed(tmp_path: Path, notify_socket: NotifySocket) -> None:
    daemon = Daemon(_config(tmp_path, free_port()),
                    env={**notify_socket.env, "WATCHDOG_USEC": "100000", "WATCHDOG_PID": "1"})
    await daemon.start()
    try:
        await notify_socket.expect("READY", "1")
        with pytest.raises(AssertionError):
            await notify_socket.expect("WATCHDOG", within=0.6)
        assert await daemon.stop() == 0
    finally:
        await daemon.kill()


async def test_abstract_notify_socket(tmp_path: Path) -> None:
    listener = NotifySocket(tmp_path, abstract=True)
    daemon = Daemon(_config(tmp_path, free_port()), env=listener.env)
    await daemon.start()
    try:
        await listener.expect("READY", "1")
        daemon.signal(signal.SIGTERM)
        await listener.expect("STOPPING", "1")
        assert await daemon.wait() == 0
    finally:
        await daemon.kill()
        listener.close()


# ------------------------------------------------------------------------------------------- unit files

ANALYZE = shutil.which("systemd-analyze")


def _verify(unit_dir: Path, *units: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SYSTEMD_UNIT_PATH": f"{unit_dir}:", "SYSTEMD_LOG_LEVEL": "notice"}
    return subprocess.run([ANALYZE or "systemd-analyze", "verify", *units], capture_output=True, text=True,
                          timeout=60, env=env, cwd=unit_dir)


def _installed_copy(tmp_path: Path, name: str) -> Path:
    """The unit with ExecStart pointing at this environment's `proxyd` (verify checks the binary exists)."""
    script = Path(sys.executable).parent / "proxyd"
    if not script.exists():
        pytest.skip("the proxyd console script is not installed next to this interpreter")
    text = (UNITS / name).read_text().replace("/opt/proxyd/bin/proxyd", str(script))
    target = tmp_path / name
    target.write_text(text)
    return target


@pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed")
def test_unit_file_verifies(tmp_path: Path) -> None:
    unit = _installed_copy(tmp_path, "proxyd.service")
    result = _verify(tmp_path, str(unit))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "proxyd.service" not in result.stderr, result.stderr


@pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed")
def test_template_unit_verifies(tmp_path: Path) -> None:
    _installed_copy(tmp_path, "proxyd@.service")
    instance = tmp_path / "proxyd@work.service"
    instance.symlink_to(tmp_path / "proxyd@.service")
    result = _verify(tmp_path, str(instance))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "proxyd@" not in result.stderr, result.stderr


@pytest.mark.parametrize("name", ["proxyd.service", "proxyd@.service"])
def test_unit_files_declare_the_service_contract(name: str) -> None:
    text = (UNITS / name).read_text()
    settings = {line.split("=", 1)[0]: line.split("=", 1)[1] for line in text.splitlines()
                if "=" in line and not line.startswith("#")}
    assert settings["Type"] == "notify"
    assert settings["NotifyAccess"] == "main"
    assert settings["WatchdogSec"] == "30"
    assert settings["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert settings["Restart"] == "on-failure"
    assert settings["User"] == "proxyd"
    for key in ("NoNewPrivileges", "PrivateTmp", "LockPersonality", "MemoryDenyWriteExecute"):
        assert settings[key] == "true", key
    assert settings["ProtectSystem"] == "strict"
    assert settings["ProtectHome"] == "true"
    assert settings["CapabilityBoundingSet"] == ""
    assert settings["RestrictAddressFamilies"] == "AF_UNIX AF_INET AF_INET6"
    assert "/etc/proxyd" in settings["ReadWritePaths"]
    # The stop timeout leaves room for the default 30 s drain.
    assert int(settings["TimeoutStopSec"]) > 30
    if name == "proxyd@.service":
        assert "/etc/proxyd/%i.yaml" in settings["ExecStart"]
