"""The channels between the runtime's threads and the policies that govern them."""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest

from edge.frames import Frame
from edge.results import Result, StageTimes, new_result_id
from edge.runtime.handoff import (
    DisplayPolicy,
    FrameQueue,
    InferencePolicy,
    LatestSlot,
    ResultBoard,
    ResultChannel,
)


def frame(i: int) -> Frame:
    return Frame(np.zeros((2, 2), np.uint8), i, i, "x")


def test_latest_replaces_and_counts() -> None:
    s = LatestSlot("latest")
    for i in range(5):
        s.put(frame(i))
    f = s.take(0.01)
    assert f is not None and f.seq == 4 and s.replaced == 4
    assert s.take(0.01) is None
    s.close()
    assert s.drained


def test_every_waits_for_the_reader_and_loses_nothing() -> None:
    s = LatestSlot("every")
    taken: list[int] = []

    def reader() -> None:
        while not s.drained:
            f = s.take(0.05)
            if f is not None:
                taken.append(f.seq)
                time.sleep(0.002)

    t = threading.Thread(target=reader)
    t.start()
    for i in range(50):
        s.put(frame(i))
    s.close()
    t.join(5)
    assert taken == list(range(50)) and s.replaced == 0


def test_every_put_gives_up_on_stop() -> None:
    s = LatestSlot("every")
    s.put(frame(0))
    stop = threading.Event()
    threading.Timer(0.1, stop.set).start()
    t0 = time.monotonic()
    s.put(frame(1), stop)  # nobody reads: returns once stop is set
    assert time.monotonic() - t0 < 1.0


# -- policies ------------------------------------------------------------------------------------
def test_policies_are_str_enums_that_read_and_write_the_config_strings() -> None:
    assert InferencePolicy("every") is InferencePolicy.EVERY and InferencePolicy.LATEST == "latest"
    assert DisplayPolicy("drop_oldest") is DisplayPolicy.DROP_OLDEST
    assert (
        json.dumps({"p": InferencePolicy.AUTO.value, "q": DisplayPolicy.BLOCK})
        == '{"p": "auto", "q": "block"}'
    )
    with pytest.raises(ValueError):
        InferencePolicy("newest")
    s = LatestSlot(InferencePolicy.EVERY)
    s.put(frame(0))
    stop = threading.Event()
    stop.set()
    s.put(frame(1), stop)  # EVERY: would wait for the reader; gives up at once on stop
    assert s.take(0.01).seq == 0  # type: ignore[union-attr]


# -- the display queue ---------------------------------------------------------------------------
def test_frame_queue_drop_oldest_counts_and_keeps_the_newest() -> None:
    q: FrameQueue[int] = FrameQueue(2, "drop_oldest", threading.Event())
    for i in range(5):
        q.put(i)
    assert q.dropped == 3 and [q.get(0.01), q.get(0.01), q.get(0.01)] == [3, 4, None]


def test_frame_queue_block_waits_and_gives_up_on_stop() -> None:
    stop = threading.Event()
    q: FrameQueue[int] = FrameQueue(1, DisplayPolicy.BLOCK, stop)
    q.put(0)
    threading.Timer(0.1, stop.set).start()
    t0 = time.monotonic()
    q.put(1)  # full and nobody reads: returns once stop is set, having dropped nothing
    assert time.monotonic() - t0 < 1.0 and q.dropped == 0 and q.get(0.01) == 0


# -- the result board ----------------------------------------------------------------------------
def result(seq: int) -> Result:
    return Result(new_result_id(), seq, 0.0, "x", "US", None, (), (), StageTimes(0, 0, 0, 0, 0))


def test_board_every_waits_for_the_frames_own_result() -> None:
    board = ResultBoard(InferencePolicy.EVERY, 0.0, threading.Event())
    r0, r2 = result(0), result(2)

    def worker() -> None:
        for seq, r in ((0, r0), (1, None), (2, r2)):  # frame 1 fails
            time.sleep(0.05)
            board.started(seq)
            board.finished(seq, r)

    threading.Thread(target=worker).start()
    assert board.result_for(frame(0)) is r0  # waited about 50 ms, no deadline
    assert board.result_for(frame(1)) is r0, "a failed frame shows the last good result"
    assert board.result_for(frame(2)) is r2


def test_board_every_shows_its_own_even_when_inference_is_ahead() -> None:
    board = ResultBoard(InferencePolicy.EVERY, 0.0, threading.Event())
    rs = [result(i) for i in range(4)]
    for i, r in enumerate(rs):
        board.finished(i, r)
    assert board.latest is rs[3]
    assert board.result_for(frame(1)) is rs[1], "frame 0 was dropped by the display: pruned"
    assert board.result_for(frame(3)) is rs[3]
    assert board._for_seq == {}


def test_board_every_stops_waiting_on_close_or_stop() -> None:
    stop = threading.Event()
    board = ResultBoard(InferencePolicy.EVERY, 0.0, stop)
    threading.Timer(0.1, board.close).start()
    t0 = time.monotonic()
    assert board.result_for(frame(5)) is None and time.monotonic() - t0 < 1.0
    board = ResultBoard(InferencePolicy.EVERY, 0.0, stop)
    threading.Timer(0.1, stop.set).start()
    assert board.result_for(frame(5)) is None


def test_board_latest_waits_briefly_for_its_own_but_not_for_a_worker_of_unknown_speed() -> None:
    board = ResultBoard(InferencePolicy.LATEST, 0.5, threading.Event())
    r3 = result(3)
    board.started(3)
    threading.Timer(0.05, board.finished, args=(3, r3)).start()
    assert board.result_for(frame(3)) is r3  # the worker was on this frame: worth the wait
    board = ResultBoard(InferencePolicy.LATEST, 0.5, threading.Event())  # its run time not known yet
    board.finished(3, r3)
    board.started(4)  # busy on an older frame than the one shown: maybe a slow model
    t0 = time.monotonic()
    assert board.result_for(frame(5)) is r3 and time.monotonic() - t0 < 0.25, "no wait"
    board.finished(4, None)  # idle: wait for frame 6 up to the deadline, then the newest
    t0 = time.monotonic()
    assert board.result_for(frame(6)) is r3 and 0.45 < time.monotonic() - t0 < 2.0
    newer = ResultBoard(InferencePolicy.LATEST, 0.0, threading.Event())
    newer.finished(9, r3)
    assert newer.result_for(frame(1)) is r3, "no sync wait: the newest result, whatever its frame"


def _timed(board: ResultBoard, seq: int, run_s: float) -> Result:
    board.started(seq)
    time.sleep(run_s)
    r = result(seq)
    board.finished(seq, r)
    return r


def test_board_latest_waits_for_a_fast_worker_one_frame_behind_but_not_for_a_slow_one() -> None:
    fast = ResultBoard(InferencePolicy.LATEST, 0.5, threading.Event())
    _timed(fast, 0, 0.02)  # runs take ~20 ms: the rest of frame 1 and frame 2 fit in 0.5 s
    fast.started(1)  # a moment behind: the display already has frame 2

    def worker() -> None:
        time.sleep(0.02)
        fast.finished(1, result(1))
        _timed(fast, 2, 0.02)

    threading.Thread(target=worker).start()
    shown = fast.result_for(frame(2))
    assert shown is not None and shown.frame_seq == 2, "its own result, not frame 1's"

    slow = ResultBoard(InferencePolicy.LATEST, 0.5, threading.Event())
    r0 = _timed(slow, 0, 0.6)  # runs take ~600 ms: more than the 500 ms budget
    slow.started(1)
    t0 = time.monotonic()
    assert slow.result_for(frame(2)) is r0 and time.monotonic() - t0 < 0.25, "out at once, no wait"


# -- the results channel -------------------------------------------------------------------------
def test_result_channel_keeps_every_result_and_the_newest_frames() -> None:
    ch = ResultChannel(maxsize=100, keep_frames=4)
    for i in range(10):
        ch.put(frame(i), result(i))
    ch.close()
    pairs, ended = ch.take_all()
    assert ended and [r.frame_seq for _, r in pairs] == list(range(10)), "results are never dropped"
    assert [f.seq if f else None for f, _ in pairs] == [None] * 6 + [6, 7, 8, 9]
    assert ch.take_all() == ([], False)


def test_result_channel_frames_stay_while_handlers_keep_up() -> None:
    ch = ResultChannel(maxsize=100, keep_frames=2)
    seen: list[int | None] = []
    for i in range(6):
        ch.put(frame(i), result(i))
        pairs, _ = ch.take_all()
        seen += [f.seq if f else None for f, _ in pairs]
    assert seen == list(range(6))
    assert all(p.frame is None for p in ch._framed), "taken pairs hold no frame"


def test_result_channel_holds_no_frame_when_no_handler_draws_on_one() -> None:
    ch = ResultChannel(maxsize=100, keep_frames=0)
    for i in range(3):
        ch.put(frame(i), result(i))
    pairs, _ = ch.take_all()
    assert [(f, r.frame_seq) for f, r in pairs] == [(None, 0), (None, 1), (None, 2)]
    assert not ch._framed
