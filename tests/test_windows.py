"""Window specs (`--segments LEN[:HOP]`), clock times and moments of a file."""

from __future__ import annotations

import pytest

from bindcli.errors import UsageError
from bindcli.windows import Reading, Window, clock, parse_moment, parse_seconds


@pytest.mark.parametrize(("text", "length", "hop"), [
    ("2s", 2.0, 2.0), ("5s:2.5s", 5.0, 2.5), ("500ms", 0.5, 0.5), ("3", 3.0, 3.0), ("1m:30s", 60.0, 30.0),
])
def test_specs_parse(text, length, hop):
    assert Window.parse(text) == Window(length, hop)


@pytest.mark.parametrize("text", ["", "two", "2s:0", "0s", "-1s", "2s:-1"])
def test_bad_specs_are_usage_errors(text):
    with pytest.raises(UsageError, match="--segments"):
        Window.parse(text)


def test_a_window_shorter_than_the_tower_takes_is_a_usage_error():
    with pytest.raises(UsageError, match="shorter than the 2 s"):
        Window.parse("1s").check(Reading.SOUND)
    with pytest.raises(UsageError, match="5 s"):
        Window.parse("2s").check(Reading.IMU)
    Window.parse("500ms").check(Reading.FRAMES)  # one frame needs no length


def test_spans_cover_the_recording_and_a_short_one_is_one_window():
    assert Window(2, 1).spans(5) == [(0, 2), (1, 3), (2, 4), (3, 5)]
    assert Window(2, 2).spans(5) == [(0, 2), (2, 4), (3, 5)]  # the tail ends at the end
    assert Window(5, 2.5).spans(3.2) == [(0.0, 3.2)]
    assert Window(2, 2).text == "2s:2s" and Window(5, 2.5).text == "5s:2.5s"


def test_clock_and_moments():
    assert clock(751) == "00:12:31" and clock(3723.5) == "01:02:03.5"
    assert parse_seconds("12:31") == 751 and parse_seconds("1:02:03") == 3723
    assert parse_moment("talk.mp4@12:31-12:36") == ("talk.mp4", 751, 756)
    assert parse_moment("talk.mp4@5s-7.5s") == ("talk.mp4", 5, 7.5)
    assert parse_moment("me@home.jpg") is None and parse_moment("plain.wav") is None
    with pytest.raises(UsageError, match="ends"):
        parse_moment("a.wav@10-5")
