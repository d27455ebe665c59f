"""Commands over the link: retries with backoff, fast resend after a damaged answer, clear errors."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from firmware_bridge.commands import CommandRejected, CommandTimeout
from firmware_bridge.messages import Hello, Param, Set, Start
from firmware_bridge.transport import LinkDownError
from tests.support.fake_probe import Rig, open_rig


@pytest.fixture
def rig() -> Iterator[Rig]:
    yield from open_rig()


def test_a_damaged_answer_is_asked_again_at_once(rig: Rig) -> None:
    link, probe, _dev, _rec = rig
    probe.damage_replies = 1
    assert link.hello() == 1
    probe.damage_replies = 1
    link.start_streaming()
    s = link.stats()
    assert s["command_resends"] == 2 and s.get("command_retries", 0) == 0  # no timeout was sat out
    assert probe.count(Hello) == 2 and probe.count(Start) == 2
    assert s["decode_errors"]["bad_crc"] == 2


def test_unanswered_command_is_retried_then_names_port_and_attempts(rig: Rig) -> None:
    link, probe, _dev, _rec = rig
    link.hello()
    probe.ignore_set = True
    with pytest.raises(CommandTimeout) as info:
        link.set(Param.GAIN_DB, 3.0, attempts=3)
    msg = str(info.value)
    assert "SET GAIN_DB" in msg and link.url in msg and "3 attempt(s)" in msg
    assert "bytes came back" in msg  # the probe kept talking (heartbeats): not a dead line
    assert probe.count(Set) == 3
    assert link.stats()["command_retries"] == 2


def test_a_nack_is_an_answer_and_is_not_retried(rig: Rig) -> None:
    link, probe, _dev, _rec = rig
    link.hello()
    with pytest.raises(CommandRejected, match="BAD_PARAMETER"):
        link.set(Param.GAIN_DB, 99.0)
    assert probe.count(Set) == 1


def test_a_probe_that_never_answers_fails_naming_port_and_what_was_tried(rig: Rig) -> None:
    link, probe, _dev, _rec = rig
    probe.muted = True  # silent: the link is declared lost while HELLO waits
    with pytest.raises(LinkDownError) as info:
        link.hello()
    msg = str(info.value)
    assert msg.startswith("HELLO: the link went down") and link.url in msg and "attempt(s)" in msg
