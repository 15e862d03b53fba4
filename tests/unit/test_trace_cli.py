"""`otel-llm trace TRACE_ID` without a Jaeger: argument checks and one-line failures."""

from __future__ import annotations

import pytest

from otel_llm.cli import build_parser, main
from otel_llm.cli.search import JaegerClient


def test_a_short_id_is_padded_and_a_non_hex_one_refused(capsys):
    """Jaeger's ids lose leading zeros: a short hex id is padded to 32 digits; 'xyz' is an argparse error."""
    assert build_parser().parse_args(["trace", "ABC"]).trace_id == "abc".zfill(32)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["trace", "xyz"])
    assert "not a trace id" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("url", "expected"), [("localhost:1", "must start with http://"), ("http://127.0.0.1:9", "cannot reach")]
)
def test_a_bad_or_unreachable_jaeger_is_one_line_and_exit_2(capsys, url, expected):
    """A URL without a scheme or a Jaeger that is not there: exit 2, one stderr line, nothing on stdout."""
    assert main(["trace", "--jaeger-url", url, "ab12"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1
    assert captured.err.startswith("otel-llm trace: ") and expected in captured.err


def test_an_unknown_trace_is_an_empty_answer():
    """Jaeger's 404 "trace not found" for an id it does not hold is no trace, not an error."""
    client = JaegerClient(
        "http://jaeger", lambda url: {"data": None, "errors": [{"code": 404, "msg": "trace not found"}]}
    )
    assert client.trace("ab12") == []
