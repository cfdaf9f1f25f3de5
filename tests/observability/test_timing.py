"""ServerTiming header formatting."""

from __future__ import annotations

import re
import time

from observability.timing import ServerTiming


def test_header_matches_the_server_timing_syntax() -> None:
    timing = ServerTiming()
    timing.add("gate", 0.12)
    timing.add("exec", 3.4)
    assert timing.header() == "gate;dur=0.12, exec;dur=3.4"


def test_empty_collector_gives_empty_header() -> None:
    assert ServerTiming().header() == ""


def test_repeated_names_are_summed_and_bad_names_become_tokens() -> None:
    timing = ServerTiming()
    timing.add("db", 1.0)
    timing.add("cost eval", 2.0)
    timing.add("db", 0.5)
    timing.add("evil,\r\nx", 1)
    timing.add("neg", -5)
    assert timing.header() == "db;dur=1.5, cost_eval;dur=2, evil___x;dur=1, neg;dur=0"
    for entry in timing.header().split(", "):
        assert re.fullmatch(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+;dur=\d+(\.\d+)?", entry)


def test_measure_records_elapsed_milliseconds() -> None:
    timing = ServerTiming()
    with timing.measure("sleep"):
        time.sleep(0.02)
    ((name, ms),) = timing.items()
    assert name == "sleep"
    assert 15 <= ms < 2000
