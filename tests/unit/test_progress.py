"""Progress: a bar for a person at a terminal, plain lines for logs."""

from __future__ import annotations

import io

import pytest

from core.progress import progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_outside_a_terminal_the_messages_are_plain_lines_and_there_is_no_bar(capsys):
    stream = io.StringIO()
    with progress("months", total=3, stream=stream) as step:
        step(1, "[demo] 2011-04: done")
        step(1, None)
        step(1, "[demo] 2011-06: done")
    assert capsys.readouterr().out == "[demo] 2011-04: done\n[demo] 2011-06: done\n"
    assert stream.getvalue() == ""


def test_at_a_terminal_a_bar_counts_the_steps_and_the_messages_print_above_it(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setenv("TERM", "xterm")
    stream = Terminal()
    with progress("months", total=2, stream=stream) as step:
        step(1, "[demo] 2011-04: done")
        step(1, None)
    shown = stream.getvalue()
    assert "[demo] 2011-04: done" in shown and "months" in shown and "2/2" in shown


def test_a_ci_run_gets_plain_lines_even_on_a_terminal(monkeypatch: pytest.MonkeyPatch, capsys):
    monkeypatch.setenv("CI", "true")
    stream = Terminal()
    with progress("months", total=1, stream=stream) as step:
        step(1, "line")
    assert stream.getvalue() == "" and capsys.readouterr().out == "line\n"
