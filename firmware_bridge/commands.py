"""Commands to the probe: waiting for their answer, resending, and the errors when none comes.

A command (HELLO, START, STOP, SET) is a request the probe answers (CAPABILITIES or ACK/NACK). All of
them are idempotent (set a state or a value), so the host may send one again without harm, and it
does, because a reply can be lost or damaged, most often on a cable that is noisy at plug-in:

- **fast resend**: a damaged packet (bad CRC, broken COBS, bad payload) while a command waits is
  most likely its reply: the command is sent again at once (at most ``FAST_RESENDS`` times per
  attempt, ``FAST_RESEND_GAP_S`` apart) instead of sitting out the timeout;
- **attempts**: a command that gets no answer within its timeout is tried again, ``attempts`` times
  in all, with exponential backoff and jitter between attempts. A NACK is an answer and is never
  retried. When every attempt failed, ``CommandTimeout`` says what was sent, where, how often, and
  what came back meanwhile (nothing at all, or only damaged bytes).
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

from firmware_bridge import messages as m
from firmware_bridge.framing import FLAG_ACK_REQUESTED
from firmware_bridge.messages import Capabilities, Hello, Message, Nack
from firmware_bridge.transport import LinkDownError, LinkError

FAST_RESENDS = 8
FAST_RESEND_GAP_S = 0.02
COMMAND_ATTEMPTS = 5
POLL_S = 0.05  # how often a waiting command looks at the stop flag


class CommandTimeout(LinkError):
    """A command got no ACK/NACK (or HELLO no CAPABILITIES) in time, after every attempt."""


class CommandRejected(LinkError):
    def __init__(self, command: str, code: int) -> None:
        name = m.NackCode(code).name if code in m.NackCode._value2member_map_ else str(code)
        super().__init__(f"probe rejected {command}: NACK {name}")
        self.command = command
        self.code = code


@dataclass
class Pending:
    """One command waiting for its answer. The reader resolves it, or nudges it on a damaged packet."""

    name: str
    wake: threading.Event = field(default_factory=threading.Event)
    result: Message | Exception | None = None
    damaged: bool = False

    def resolve(self, result: Message | Exception) -> None:
        self.result = result
        self.wake.set()

    def nudge(self) -> None:
        self.damaged = True
        self.wake.set()


def backoff_delay(attempt: int, backoff: tuple[float, float]) -> float:
    """Exponential backoff for attempt 1, 2, ... capped at ``backoff[1]``, with +-25 % jitter."""
    base, cap = backoff
    return min(cap, base * 2 ** (attempt - 1)) * random.uniform(0.75, 1.25)


def tried_message(
    name: str,
    outcome: str,
    url: str,
    attempts: int,
    timeout: float,
    resends: int,
    got: Counter[str],
    elapsed: float,
) -> str:
    """Why a command failed, what it tried, and what came back meanwhile (``got``: counters)."""
    bytes_in = got["bytes_in"]
    damaged = sum(v for k, v in got.items() if k.startswith("decode_errors."))
    heard = (
        "nothing came back"
        if bytes_in == 0
        else f"{bytes_in} bytes came back, {damaged} damaged packet(s), no answer to it"
    )
    return (
        f"{name}: {outcome}, on {url} after {attempts} attempt(s) in {elapsed:.1f} s "
        f"(each waited up to {timeout:g} s; {resends} fast resend(s) after damaged packets); {heard}"
    )


class Commands:
    """The command half of ``ProbeLink`` (a mixin): the link supplies sending, counting and stopping."""

    url: str
    protocol_versions: tuple[int, int]
    command_timeout: float
    command_attempts: int
    backoff: tuple[float, float]
    capabilities: Capabilities | None
    version: int | None
    _negotiated: bool
    _streaming: bool
    _stop: threading.Event
    _lock: threading.RLock
    _pending: dict[int, Pending]
    _hello: tuple[int, Pending] | None

    def _send(
        self, msg: Message, *, flags: int = 0, pending: Pending | None = None, hello: bool = False
    ) -> None:
        raise NotImplementedError

    def _count(self, key: str) -> None:
        raise NotImplementedError

    def _flat(self) -> Counter[str]:
        raise NotImplementedError

    def hello(self, *, attempts: int | None = None) -> int:
        """HELLO -> CAPABILITIES; returns the negotiated version (``VersionMismatchError`` if none)."""
        vmin, vmax = self.protocol_versions
        reply = self._request(Hello(vmin, vmax), "HELLO", hello=True, attempts=attempts)
        if isinstance(reply, Nack):
            if reply.code == m.NackCode.UNSUPPORTED_VERSION:
                raise m.VersionMismatchError(
                    f"no common protocol version: host speaks {vmin}..{vmax}, "
                    "probe refused HELLO with NACK UNSUPPORTED_VERSION",
                    field="version",
                )
            raise CommandRejected("HELLO", reply.code)
        assert isinstance(reply, Capabilities)
        version = m.negotiate_version((vmin, vmax), (reply.version_min, reply.version_max))
        self.capabilities, self.version = reply, version
        self._negotiated = True
        return version

    def start_streaming(self, *, attempts: int | None = None) -> None:
        self._command(m.Start(), "START", attempts)
        self._streaming = True

    def stop_streaming(self, *, attempts: int | None = None) -> None:
        self._command(m.Stop(), "STOP", attempts)
        self._streaming = False

    def set(self, param: m.Param | int, value: float, *, attempts: int | None = None) -> None:
        p = m.Param(param)
        self._command(m.Set(p, value), f"SET {p.name}={value}", attempts)

    def _command(self, msg: Message, name: str, attempts: int | None) -> None:
        reply = self._request(msg, name, attempts=attempts)
        if isinstance(reply, Nack):
            raise CommandRejected(name, reply.code)

    def _request(
        self, msg: Message, name: str, *, hello: bool = False, attempts: int | None = None
    ) -> Message:
        """Send ``msg`` until answered: up to ``attempts`` timeouts, backoff between them."""
        n = attempts or self.command_attempts
        t0, before = time.monotonic(), self._flat()
        resends = 0
        for attempt in range(1, n + 1):
            try:
                reply, fast = self._attempt(msg, name, hello)
            except LinkDownError as exc:
                if self._stop.is_set():
                    raise
                outcome = f"the link went down ({exc})"
                elapsed, got = time.monotonic() - t0, self._flat() - before
                timeout = self.command_timeout
                raise LinkDownError(
                    tried_message(name, outcome, self.url, attempt, timeout, resends, got, elapsed)
                ) from exc
            resends += fast
            if reply is not None:
                return reply
            if attempt < n:
                self._count("command_retries")
                if self._stop.wait(backoff_delay(attempt, self.backoff)):
                    raise LinkDownError("link stopped")
        elapsed, got = time.monotonic() - t0, self._flat() - before
        timeout = self.command_timeout
        outcome = "no answer from the probe"
        raise CommandTimeout(tried_message(name, outcome, self.url, n, timeout, resends, got, elapsed))

    def _attempt(self, msg: Message, name: str, hello: bool) -> tuple[Message | None, int]:
        """One attempt: (the answer or None on timeout, fast resends made). Raises if the link drops."""
        pending = Pending(name)
        flags = 0 if hello else FLAG_ACK_REQUESTED
        self._send(msg, flags=flags, pending=pending, hello=hello)
        last_send = time.monotonic()
        deadline = last_send + self.command_timeout
        fast = 0
        try:
            while True:
                now = time.monotonic()
                pending.wake.wait(max(0.0, min(POLL_S, deadline - now)))
                if pending.result is not None:
                    break
                if self._stop.is_set():
                    raise LinkDownError("link stopped")
                now = time.monotonic()
                if pending.damaged and fast < FAST_RESENDS:
                    pending.wake.clear()  # the result, if any, is checked again right below
                    if pending.result is not None:
                        break
                    if now - last_send < FAST_RESEND_GAP_S:
                        time.sleep(FAST_RESEND_GAP_S - (now - last_send))
                    pending.damaged = False
                    fast += 1
                    self._count("command_resends")
                    self._send(msg, flags=flags, pending=pending, hello=hello)
                    last_send = time.monotonic()
                elif pending.damaged:
                    pending.wake.clear()
                if time.monotonic() >= deadline and pending.result is None:
                    return None, fast
        finally:
            with self._lock:  # one pending may sit under several seqs (resends)
                self._pending = {s: p for s, p in self._pending.items() if p is not pending}
                if self._hello and self._hello[1] is pending:
                    self._hello = None
        if isinstance(pending.result, Exception):
            raise pending.result
        assert pending.result is not None
        return pending.result, fast

    def _nudge_pending(self) -> None:
        """A damaged packet arrived: wake every waiting command (it may have been their answer)."""
        with self._lock:
            waiting = list(self._pending.values()) + ([self._hello[1]] if self._hello else [])
        for p in waiting:
            p.nudge()

    def _fail_pending(self, exc: Exception) -> None:
        """Resolve every waiting command with ``exc`` (call with ``_lock`` held)."""
        pending = list(self._pending.values()) + ([self._hello[1]] if self._hello else [])
        self._pending.clear()
        self._hello = None
        for p in pending:
            p.resolve(exc)
