"""The CLI progress bar: redrawn on a terminal, a line per tenth in a log."""

from __future__ import annotations

import io

from callcenter.tools.progress import BAR_WIDTH, Progress


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_given_log_stream_when_progressing_then_one_line_per_tenth_with_rate() -> None:
    out, clock = io.StringIO(), FakeClock()
    with Progress("importing faq.xlsx", 200, stream=out, clock=clock) as bar:
        for _ in range(200):
            clock.now += 0.01
            bar.advance()
    lines = out.getvalue().splitlines()
    assert len(lines) == 10
    assert lines[0] == "importing faq.xlsx: 20/200 (10%) 100.0/s"
    assert lines[-1].startswith("importing faq.xlsx: 200/200 (100%)")
    assert "\r" not in out.getvalue()


def test_given_big_jumps_when_progressing_then_no_line_repeated() -> None:
    out = io.StringIO()
    bar = Progress("job", 1000, stream=out, clock=FakeClock())
    bar.update(950)
    bar.update(960)
    bar.update(1000)
    assert [line.split(":")[1].split()[0] for line in out.getvalue().splitlines()] == [
        "950/1000", "1000/1000"]


def test_given_terminal_when_progressing_then_redrawn_in_place_and_throttled() -> None:
    out, clock = Terminal(), FakeClock()
    bar = Progress("prompts", 4, stream=out, clock=clock, redraw_s=1.0)
    bar.update(1)
    bar.update(2)  # same instant: not redrawn
    clock.now += 2
    bar.update(3)
    bar.update(4)  # the end is always drawn
    bar.close()
    bar.close()  # twice is fine
    text = out.getvalue()
    assert text.count("\r") == 4 and text.endswith("\n") and text.count("\n") == 1
    last = text.split("\r")[-1]
    assert last.startswith("prompts: [" + "#" * BAR_WIDTH + "] 4/4 (100%)")


def test_given_total_learned_later_when_updated_with_it_then_shown() -> None:
    out = io.StringIO()
    bar = Progress("prompts", stream=out, clock=FakeClock())
    bar.update(0, 10)
    bar.update(5, 10)
    assert bar.total == 10 and out.getvalue().splitlines()[-1].startswith("prompts: 5/10 (50%)")


def test_given_zero_total_when_closed_then_nothing_written_to_a_log() -> None:
    out = io.StringIO()
    with Progress("empty", 0, stream=out, clock=FakeClock()) as bar:
        bar.update(0)
    assert out.getvalue() == ""
