"""journald's native protocol (proxyd.systemd.JournalWriter) against a fake journal socket: one field per log key,
MESSAGE unchanged, the binary form for multi-line values, and the stdout fallback when the socket refuses."""

from __future__ import annotations

import io
import json
import socket
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from proxyd.systemd import JournalWriter, journal_entry, journal_field_name, journal_socket_available


def parse_entry(data: bytes) -> dict[str, str]:
    """Decode one native journal datagram the way journald does."""
    fields: dict[str, str] = {}
    while data:
        newline = data.index(b"\n")
        head = data[:newline]
        if b"=" in head:
            name, _, value = head.partition(b"=")
            data = data[newline + 1:]
        else:
            name = head
            (size,) = struct.unpack("<Q", data[newline + 1:newline + 9])
            value = data[newline + 9:newline + 9 + size]
            assert data[newline + 9 + size:newline + 10 + size] == b"\n"
            data = data[newline + 10 + size:]
        fields[name.decode()] = value.decode()
    return fields


class FakeJournal:
    """A datagram socket standing in for /run/systemd/journal/socket."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(2)

    def entry(self) -> dict[str, str]:
        return parse_entry(self.sock.recv(1 << 20))

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[FakeJournal]:
    fake = FakeJournal(tmp_path / "journal.sock")
    yield fake
    fake.close()


def run_logging(socket_path: str, code: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter whose journal-format log stream is a JournalWriter (the log.py hook)."""
    script = ("import structlog, sys\nfrom proxyd.log import setup_logging\nfrom proxyd.systemd import JournalWriter\n"
              f"writer = JournalWriter(sys.stdout, socket_path={socket_path!r})\n"
              "setup_logging(fmt='journal', stream=writer)\nlog = structlog.get_logger('proxyd.test')\n"
              f"{code}\nwriter.close()\n")
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)


def test_field_names() -> None:
    assert journal_field_name("request_id") == "REQUEST_ID"
    assert journal_field_name("latency_ms") == "LATENCY_MS"
    assert journal_field_name("upstream-model") == "UPSTREAM_MODEL"
    assert journal_field_name("_private") == "PRIVATE"
    assert journal_field_name("2fa") == "PROXYD_2FA"
    # Fields journald gives a meaning of their own are never overwritten by a log key.
    assert journal_field_name("message") == "PROXYD_MESSAGE"
    assert journal_field_name("priority") == "PROXYD_PRIORITY"
    assert journal_field_name("object_pid") == "PROXYD_OBJECT_PID"
    assert len(journal_field_name("x" * 100)) == 64


def test_entry_format_round_trips() -> None:
    data = journal_entry([("MESSAGE", "one line"), ("STATUS", 502), ("OK", True), ("TRACE", "a\nb"),
                          ("ADDRESSES", ["127.0.0.1:8317"])])
    assert data.startswith(b"MESSAGE=one line\nSTATUS=502\nOK=true\nTRACE\n" + struct.pack("<Q", 3) + b"a\nb\n")
    assert parse_entry(data) == {"MESSAGE": "one line", "STATUS": "502", "OK": "true", "TRACE": "a\nb",
                                 "ADDRESSES": '["127.0.0.1:8317"]'}


def test_request_fields_become_journal_fields(journal: FakeJournal) -> None:
    result = run_logging(journal.path, (
        "log.warning('upstream attempt failed', request_id='3f2a9c0d1e4b5a67', model='smoke',"
        " provider='openai-compatibility', credential='openai-compatibility:3f2a9c0d1e4b', status=502,"
        " latency_ms=12.5, message='not MESSAGE')"))
    assert result.stdout == ""  # nothing fell back to stdout
    entry = journal.entry()
    assert entry["PRIORITY"] == "4"
    assert entry["SYSLOG_IDENTIFIER"] == "proxyd"
    assert entry["EVENT"] == "upstream attempt failed"
    assert entry["LEVEL"] == "warning"
    assert entry["REQUEST_ID"] == "3f2a9c0d1e4b5a67"
    assert entry["MODEL"] == "smoke"
    assert entry["PROVIDER"] == "openai-compatibility"
    assert entry["CREDENTIAL"] == "openai-compatibility:3f2a9c0d1e4b"
    assert entry["STATUS"] == "502"
    assert entry["LATENCY_MS"] == "12.5"
    assert entry["PROXYD_MESSAGE"] == "not MESSAGE"
    # MESSAGE is the same JSON object the stdout journal format writes (without the <N> prefix).
    message = json.loads(entry["MESSAGE"])
    assert message["PRIORITY"] == "4"
    assert message["request_id"] == "3f2a9c0d1e4b5a67"


def test_exception_is_a_multiline_field(journal: FakeJournal) -> None:
    run_logging(journal.path, (
        "try:\n    raise RuntimeError('boom')\nexcept RuntimeError:\n"
        "    log.exception('handler failed', request_id='r1')"))
    entry = journal.entry()
    assert entry["PRIORITY"] == "3"
    assert entry["REQUEST_ID"] == "r1"
    assert "RuntimeError: boom" in entry["EXCEPTION"]
    assert "Traceback" in entry["EXCEPTION"]
    assert "\n" in entry["EXCEPTION"]


def test_refused_lines_fall_back_to_the_stream(tmp_path: Path) -> None:
    fallback = io.StringIO()
    writer = JournalWriter(fallback, socket_path=str(tmp_path / "no-journald.sock"))
    writer.write('<6>{"event": "listening"}\n')
    assert fallback.getvalue() == '<6>{"event": "listening"}\n'
    writer.close()


def test_lines_are_sent_whole(journal: FakeJournal) -> None:
    fallback = io.StringIO()
    writer = JournalWriter(fallback, socket_path=journal.path)
    writer.write('<6>{"event": "a", ')
    writer.write('"n": 1}\n<7>{"event": "b"}\n<6>{"event": "c"}')
    assert json.loads(journal.entry()["MESSAGE"]) == {"event": "a", "n": 1}
    entry = journal.entry()
    assert (entry["EVENT"], entry["PRIORITY"]) == ("b", "7")
    writer.close()  # the unterminated last line is not lost
    assert journal.entry()["EVENT"] == "c"
    assert fallback.getvalue() == ""


def test_an_entry_too_large_for_a_datagram_falls_back(journal: FakeJournal) -> None:
    fallback = io.StringIO()
    writer = JournalWriter(fallback, socket_path=journal.path)
    big = json.dumps({"event": "huge", "blob": "x" * (4 << 20)})
    writer.write(f"<6>{big}\n")
    assert fallback.getvalue() == f"<6>{big}\n"
    writer.close()


def test_plain_text_line_still_gets_message_and_priority(journal: FakeJournal) -> None:
    writer = JournalWriter(io.StringIO(), socket_path=journal.path)
    writer.write("<3>not json\n")
    assert journal.entry() == {"MESSAGE": "not json", "PRIORITY": "3", "SYSLOG_IDENTIFIER": "proxyd"}
    writer.close()


def test_socket_detection(journal: FakeJournal, tmp_path: Path) -> None:
    assert journal_socket_available(journal.path)
    assert not journal_socket_available(str(tmp_path / "absent"))
    (tmp_path / "file").write_text("")
    assert not journal_socket_available(str(tmp_path / "file"))
