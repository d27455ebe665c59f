import numpy as np
import pytest

from edge.metrics import Counters, LatencyRecorder, RateMeter, summarize


def test_rate_meter_counts_events_in_the_window() -> None:
    m = RateMeter(window_s=1.0)
    for i in range(31):
        m.tick(int(i * 1e9 / 30))  # 30 Hz for one second
    assert m.rate(now_ns=int(1e9)) == pytest.approx(30.0)
    assert m.rate(now_ns=int(10e9)) == 0.0, "old events fall out of the window"


def test_summary_percentiles() -> None:
    rec = LatencyRecorder()
    for v in range(1, 101):
        rec.add("e2e", float(v))
    s = rec.summary()["e2e"]
    assert s["count"] == 100 and s["max"] == 100
    assert s["p50"] == pytest.approx(np.percentile(range(1, 101), 50))
    assert s["p99"] == pytest.approx(np.percentile(range(1, 101), 99))
    assert rec.recent_median("e2e", n=3) == 99
    assert rec.recent_median("none") is None
    assert summarize([]) == {"count": 0}


def test_counters_as_dict_flattens_extra() -> None:
    c = Counters(acquired=3)
    c.extra["probe_reconnects"] = 2
    d = c.as_dict()
    assert d["acquired"] == 3 and d["probe_reconnects"] == 2 and "extra" not in d
