"""Transports: URL registry, the in-process loop pair (incl. simulated cable pull), serial over a real pty."""

from __future__ import annotations

import contextlib
import os
import threading
import time
import tty
from collections.abc import Iterator
from pathlib import Path

import pytest

from firmware_bridge.transport import (
    LinkDownError,
    LoopTransport,
    Transport,
    loop_pair,
    open_transport,
    register_transport,
)


def test_unknown_scheme_names_known_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown transport scheme 'nope'.*loop.*serial"):
        open_transport("nope://x")


def test_register_custom_scheme_gets_url() -> None:
    seen: list[str] = []
    host, _dev = loop_pair()

    def factory(url: str) -> Transport:
        seen.append(url)
        return host

    register_transport("Custom", factory)
    assert open_transport("custom://a/b?c=1") is host
    assert seen == ["custom://a/b?c=1"]


def test_loop_pair_both_directions_and_max_bytes() -> None:
    host, dev = loop_pair()
    assert isinstance(host, Transport) and host.is_open
    host.write(b"down")
    assert dev.read(100, 0.5) == b"down"
    dev.write(b"0123456789")
    assert host.read(4, 0.5) == b"0123"
    assert host.read(100, 0.5) == b"456789"


def test_loop_read_timeout_returns_empty() -> None:
    host, _dev = loop_pair()
    t0 = time.monotonic()
    assert host.read(10, 0.05) == b""
    assert 0.04 <= time.monotonic() - t0 < 0.5


def test_loop_read_wakes_on_write_from_other_thread() -> None:
    host, dev = loop_pair()
    payload = bytes(range(256)) * 200

    def writer() -> None:
        for i in range(0, len(payload), 97):
            dev.write(payload[i : i + 97])

    th = threading.Thread(target=writer)
    th.start()
    got = bytearray()
    deadline = time.monotonic() + 5
    while len(got) < len(payload) and time.monotonic() < deadline:
        got += host.read(1000, 0.1)
    th.join()
    assert bytes(got) == payload


def test_loop_url_opens_named_pair_and_unknown_name_is_down() -> None:
    _host, dev = loop_pair("t-named")
    try:
        h2 = open_transport("loop://t-named")
        h2.write(b"hi")
        assert dev.read(10, 0.5) == b"hi"
    finally:
        dev.close()
    with pytest.raises(LinkDownError):
        open_transport("loop://t-named")  # closing the device end unregisters the name


def test_loop_cable_pull_and_replug() -> None:
    host, dev = loop_pair("t-pull")
    try:
        dev.write(b"in flight")
        dev.disconnect()
        with pytest.raises(LinkDownError):
            host.read(10, 0.1)
        with pytest.raises(LinkDownError):
            host.write(b"x")
        with pytest.raises(LinkDownError):
            open_transport("loop://t-pull")  # device absent while unplugged
        dev.write(b"into the void")  # the device end never raises
        dev.reconnect()
        with pytest.raises(LinkDownError):
            host.read(10, 0.01)  # a handle from before the pull stays dead
        fresh = open_transport("loop://t-pull")
        assert fresh.read(100, 0.02) == b""  # bytes in flight at the pull are gone
        dev.write(b"back")
        assert fresh.read(100, 0.5) == b"back"
    finally:
        dev.close()


def test_loop_pull_wakes_blocked_reader() -> None:
    host, dev = loop_pair()
    errors: list[BaseException] = []

    def reader() -> None:
        try:
            host.read(10, 5.0)
        except LinkDownError as exc:
            errors.append(exc)

    th = threading.Thread(target=reader)
    th.start()
    time.sleep(0.02)
    t0 = time.monotonic()
    dev.disconnect()
    th.join(2)
    assert errors and time.monotonic() - t0 < 1.0


def test_closed_loop_transport_raises() -> None:
    host: LoopTransport
    host, _dev = loop_pair()
    host.close()
    assert not host.is_open
    with pytest.raises(LinkDownError):
        host.read(1, 0.01)


# -------------------------------------------------------------------------------------- serial over pty


@pytest.fixture
def pty() -> Iterator[tuple[int, str]]:
    master, slave = os.openpty()
    tty.setraw(slave)
    name = os.ttyname(slave)
    os.close(slave)  # the host opens it by name, like a real device node
    yield master, name
    with contextlib.suppress(OSError):  # a test may already have closed it (the pull)
        os.close(master)


def test_serial_pty_round_trip(pty: tuple[int, str]) -> None:
    master, name = pty
    t = open_transport(f"serial://{name}?baud=9600")
    try:
        assert t.is_open
        os.write(master, b"up\x00\x01\xff")
        got = b""
        deadline = time.monotonic() + 2
        while len(got) < 5 and time.monotonic() < deadline:
            got += t.read(100, 0.1)
        assert got == b"up\x00\x01\xff"  # raw: no CR/LF or 0x00 translation
        t.write(b"down\r\n\x00")
        time.sleep(0.02)
        assert os.read(master, 100) == b"down\r\n\x00"
        t0 = time.monotonic()
        assert t.read(100, 0.05) == b""
        assert time.monotonic() - t0 < 0.5
    finally:
        t.close()
    assert not t.is_open


def test_serial_read_drains_a_burst_in_order_within_max_bytes(pty: tuple[int, str]) -> None:
    # A tty hands over at most 4 KiB per read(2); read() drains what is waiting (several of those)
    # but never returns more than asked, and loses or reorders nothing across calls.
    master, name = pty
    t = open_transport(f"serial://{name}")
    payload = bytes(range(1, 256)) * 1000  # 255 KB: many tty buffers

    def write_all() -> None:
        view = memoryview(payload)
        while view:
            view = view[os.write(master, view) :]

    writer = threading.Thread(target=write_all)
    try:
        writer.start()
        got = bytearray()
        sizes = []
        deadline = time.monotonic() + 10
        while len(got) < len(payload) and time.monotonic() < deadline:
            data = t.read(10_000, 0.1)
            sizes.append(len(data))
            got += data
        writer.join(5)
        assert bytes(got) == payload
        assert max(sizes) <= 10_000
    finally:
        t.close()


def test_serial_pty_master_closed_is_link_down(pty: tuple[int, str]) -> None:
    master, name = pty
    t = open_transport(f"serial://{name}")
    os.close(master)  # the faithful cable pull: the device side goes away
    with pytest.raises(LinkDownError):
        t.read(100, 0.1)
    with pytest.raises(LinkDownError):
        t.write(b"x")
    t.close()


def test_serial_missing_device_is_link_down(tmp_path: Path) -> None:
    with pytest.raises(LinkDownError, match="cannot open"):
        open_transport(f"serial://{tmp_path}/ttyACM9")


def test_serial_node_disappearing_is_link_down(pty: tuple[int, str], tmp_path: Path) -> None:
    _master, name = pty
    link = tmp_path / "ttyProbe"
    link.symlink_to(name)  # like /dev/serial/by-id/...: udev removes it on unplug
    t = open_transport(f"serial://{link}")
    assert t.read(10, 0.01) == b""
    link.unlink()
    with pytest.raises(LinkDownError, match="disappeared"):
        t.read(10, 0.01)
    t.close()


def test_serial_close_from_another_thread_during_a_read_is_link_down(pty: tuple[int, str]) -> None:
    # The probe-stall fault: the supervisor closed the port while the reader sat in pyserial's read,
    # which then used the fd close had set to None (TypeError) and killed the reader thread.
    master, name = pty
    for _ in range(30):  # close at many points of the read: before, inside select, around os.read
        t = open_transport(f"serial://{name}")
        outcome: list[BaseException | bytes] = []
        entered = threading.Event()

        def reader(
            t: Transport = t,
            outcome: list[BaseException | bytes] = outcome,
            entered: threading.Event = entered,
        ) -> None:
            entered.set()
            try:
                while True:
                    outcome.append(t.read(100, 5.0))
            except BaseException as exc:
                outcome.append(exc)

        th = threading.Thread(target=reader)
        th.start()
        entered.wait(2)
        os.write(master, b"x" * 10)  # some reads return data, so close lands in different places
        t.close()
        th.join(4.0)  # a close cancels the read at once: it does not sit out the 5 s timeout
        assert not th.is_alive()
        assert isinstance(outcome[-1], LinkDownError), outcome[-1]
        with pytest.raises(LinkDownError, match="closed"):
            t.write(b"x")
        t.close()  # idempotent
        assert not t.is_open
