import threading
import time

import numpy as np

from edge.frames import Frame
from edge.runtime.handoff import LatestSlot


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
