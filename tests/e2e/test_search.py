"""`otel-llm search` over traces of the reference app in the real collector and Jaeger of the stack fixture.

The app runs in a two-arm experiment (OpenAI fast, Bedrock slow) and serves one old request, then, after a
gap, a batch covering both arms and two intents. Each filter must select exactly the traces of this run it
describes (other modules' traces share Jaeger and the arm names, so assertions intersect with this run's trace
ids), with and without ``--service``; the table and ``--json`` must show what the traces hold; ``--limit``
must keep the newest; ``--lookback`` must include the batch and exclude the older request; nothing matched
and an unreachable Jaeger must exit 2 with one line saying so.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass

import pytest

from otel_llm import semconv
from otel_llm.cli.demo_stack import API_SERVICE, JOB_ID_ATTRIBUTE, SERVICES_SERVICE, WORKER_SERVICE
from otel_llm.cli.search import EXIT_ERROR, JAEGER_URL_ENV
from otel_llm.demo.embedded import sessions_covering_arms
from otel_llm.demo.models import LATENCY_ENV, PROVIDER_MODELS, TTFT_ENV, provider_variable
from otel_llm.experiment import Experiment, parse_arms
from otel_llm.traces import Trace, from_jaeger
from tests.e2e.reference_app import ReferenceApp
from tests.support.poll import poll

pytestmark = pytest.mark.e2e

OTEL_LLM = os.path.join(os.path.dirname(sys.executable), "otel-llm")  # the installed console script
OPENAI, BEDROCK = (PROVIDER_MODELS[name] for name in ("openai", "aws.bedrock"))
OPENAI_ARM, BEDROCK_ARM = (f"{spec.provider}:{spec.model}" for spec in (OPENAI, BEDROCK))
BEDROCK_LATENCY_MS = 1500  # three sequential-ish calls: a Bedrock trace lasts over 4.5 s
MIN_DURATION = "3s"  # between the two arms' trace durations, with room for a loaded box
MESSAGES = {"waste": "How do I recycle a plastic bottle?", "general": "Hello, what can you do?"}
GAP_S = 8.0  # between the old request's end and the batch's start
BATCH = 4
LLM_CALLS = 3  # intent, general, answer


@dataclass(frozen=True)
class SentTrace:
    trace_id: str
    arm: str
    intent: str
    start_us: int
    end_us: int
    tokens: int


@dataclass(frozen=True)
class Sent:
    old: SentTrace  # OpenAI, general, GAP_S before the batch
    batch: tuple[SentTrace, ...]  # both arms x both intents

    @property
    def all(self) -> tuple[SentTrace, ...]:
        return (self.old, *self.batch)

    def ids(self, **wanted: str) -> set[str]:
        return {
            sent.trace_id
            for sent in self.all
            if all(getattr(sent, name) == value for name, value in wanted.items())
        }


def _complete_trace(stack, job_id: str) -> tuple[Trace, dict] | None:
    """The job's trace once Jaeger holds all of it (API root, worker roll-up, services, three LLM calls)."""
    answer = stack.jaeger_answer(WORKER_SERVICE, {JOB_ID_ATTRIBUTE: job_id})
    traces = from_jaeger(answer)
    if len(traces) != 1:
        return None
    trace = traces[0]
    consumers = trace.of_kind("consumer", WORKER_SERVICE)
    complete = (
        [root.service for root in trace.roots] == [API_SERVICE]
        and consumers
        and semconv.ROLLUP_PROVIDER in consumers[0].attributes
        and SERVICES_SERVICE in trace.services
        and sum(span.is_llm for span in trace.spans) == LLM_CALLS
    )
    return (trace, answer["data"][0]) if complete else None


def _sent_trace(stack, job: dict, intent: str) -> SentTrace:
    trace, raw = poll(  # raw: Jaeger's JSON, read apart from otel_llm.traces for the expected times
        lambda: _complete_trace(stack, job["job_id"]), timeout=90, message=f"job {job['job_id']}'s trace"
    )
    llm = [span for span in trace.spans if span.is_llm]
    return SentTrace(
        trace_id=trace.trace_id.zfill(32),
        arm=f"{job['provider']}:{job['model']}",
        intent=intent,
        start_us=min(span["startTime"] for span in raw["spans"]),
        end_us=max(span["startTime"] + span["duration"] for span in raw["spans"]),
        tokens=sum(
            span.attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS]
            + span.attributes[semconv.GEN_AI_USAGE_OUTPUT_TOKENS]
            for span in llm
        ),
    )


@pytest.fixture(scope="module")
def sent(stack, tmp_path_factory) -> Sent:
    experiment_id = f"search-{uuid.uuid4().hex[:8]}"
    arms = f"{OPENAI_ARM}=50,{BEDROCK_ARM}=50"
    env = {
        "OTEL_LLM_EXPERIMENT_ID": experiment_id,
        "OTEL_LLM_EXPERIMENT_ARMS": arms,
        LATENCY_ENV: "20",
        TTFT_ENV: "5",
        provider_variable(LATENCY_ENV, BEDROCK.provider): str(BEDROCK_LATENCY_MS),
        provider_variable(TTFT_ENV, BEDROCK.provider): "300",
    }
    # Sessions whose arms alternate openai, bedrock, ...: the first is the old request.
    sessions = sessions_covering_arms(Experiment(experiment_id, parse_arms(arms)), 1 + BATCH)
    intents = ["general", "waste", "waste", "general", "general"]  # each arm gets both intents in the batch
    bodies = [
        (MESSAGES[intent], session, "user-search") for intent, session in zip(intents, sessions, strict=True)
    ]
    with ReferenceApp(stack, tmp_path_factory.mktemp("search") / "app.log", env=env) as app:
        old_job = app.converse(*bodies[0])
        old_done = time.time()
        poll(lambda: time.time() >= old_done + GAP_S, timeout=GAP_S + 5, message="the gap after the old one")
        batch_jobs = app.load(bodies[1:], concurrency=BATCH)
        jobs = [old_job, *batch_jobs]
        assert [job["status"] for job in jobs] == ["done"] * len(jobs), app.log_path.read_text()[-3000:]
        assert [job["provider"] for job in jobs] == ["openai", "aws.bedrock"] * 2 + ["openai"]
        traces = [_sent_trace(stack, job, intent) for job, intent in zip(jobs, intents, strict=True)]
    return Sent(traces[0], tuple(traces[1:]))


def search(stack, *args: str, jaeger_url: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, JAEGER_URL_ENV: jaeger_url or stack.jaeger_query_url}
    return subprocess.run([OTEL_LLM, "search", *args], env=env, capture_output=True, text=True, timeout=60)


def found_ids(stack, *args: str) -> set[str]:
    """Trace ids of `search --json`; an empty set only for the "nothing matched" answer (exit 2)."""
    result = search(stack, "--json", "--limit", "100", *args)
    if result.returncode == EXIT_ERROR and result.stderr.startswith("otel-llm search: no trace matched "):
        assert result.stdout == ""
        return set()
    assert result.returncode == 0, result.stderr
    return {trace["trace_id"] for trace in json.loads(result.stdout)}


class TestOutput:
    def test_table_has_a_row_per_trace_with_every_column(self, stack, sent):
        """Each trace of the run is a row: id, start, root, duration, provider/model, calls, tokens, error."""
        result = search(stack, "--service", WORKER_SERVICE, "--limit", "100")
        assert result.returncode == 0, result.stderr
        header, rule, *rows = result.stdout.splitlines()
        assert header.split() == [
            *("TRACE", "ID", "START", "(UTC)", "ROOT", "DURATION"),
            *("PROVIDER/MODEL", "LLM", "CALLS", "TOKENS", "ERROR"),
        ]
        assert set(rule) == {"-", " "}
        by_id = {row.split()[0]: row for row in rows}
        for trace in sent.all:
            row = by_id[trace.trace_id]
            spec = BEDROCK if trace.arm == BEDROCK_ARM else OPENAI
            assert f"{API_SERVICE}: POST /api/v1/chat" in row and f"{spec.provider}/{spec.model}" in row
            assert row.split()[-3:] == [str(LLM_CALLS), str(trace.tokens), "no"]
        slow_row = by_id[next(iter(sent.ids(arm=BEDROCK_ARM)))]
        duration, unit = slow_row.split()[6:8]  # after id, date, time and "chat-api: POST /api/v1/chat"
        assert unit == "s" and float(duration) >= 3

    def test_json_holds_each_trace_summary(self, stack, sent):
        """--json: one object per trace with root, services, provider, model, calls, tokens and error."""
        result = search(stack, "--json", "--service", API_SERVICE, "--arm", BEDROCK_ARM, "--limit", "100")
        assert result.returncode == 0, result.stderr
        summaries = {summary["trace_id"]: summary for summary in json.loads(result.stdout)}
        expected = {trace.trace_id: trace for trace in sent.batch if trace.arm == BEDROCK_ARM}
        assert expected.keys() <= summaries.keys()
        for trace_id, trace in expected.items():
            summary = summaries[trace_id]
            assert (summary["root_service"], summary["root_operation"]) == (API_SERVICE, "POST /api/v1/chat")
            assert set(summary["services"]) == {API_SERVICE, WORKER_SERVICE, SERVICES_SERVICE}
            assert (summary["providers"], summary["models"]) == ([BEDROCK.provider], [BEDROCK.model])
            assert summary["llm_calls"] == LLM_CALLS and summary["error"] is False
            assert summary["input_tokens"] + summary["output_tokens"] == trace.tokens
            assert summary["duration_ms"] == pytest.approx((trace.end_us - trace.start_us) / 1000, abs=0.01)


@pytest.mark.parametrize("scope", ["service", "all-services"])
@pytest.mark.parametrize(
    ("filters", "wanted"),
    [
        (("--provider", "openai"), {"arm": OPENAI_ARM}),
        (("--provider", "bedrock"), {"arm": BEDROCK_ARM}),  # an alias of aws.bedrock
        (("--model", BEDROCK.model), {"arm": BEDROCK_ARM}),
        (("--model", OPENAI.model), {"arm": OPENAI_ARM}),
        (("--arm", OPENAI_ARM), {"arm": OPENAI_ARM}),
        (("--arm", BEDROCK_ARM), {"arm": BEDROCK_ARM}),
        (("--intent", "waste"), {"intent": "waste"}),
        (("--intent", "general"), {"intent": "general"}),
        (("--min-duration", MIN_DURATION), {"arm": BEDROCK_ARM}),
        (("--provider", "aws.bedrock", "--intent", "general"), {"arm": BEDROCK_ARM, "intent": "general"}),
        (("--provider", "openai", "--min-duration", MIN_DURATION), None),
    ],
)
def test_each_filter_selects_exactly_the_traces_it_describes(stack, sent, scope, filters, wanted):
    """Of this run's traces, a filter finds exactly those it describes, with and without --service."""
    scope_args = ("--service", WORKER_SERVICE) if scope == "service" else ()
    ours = sent.ids()
    expected = sent.ids(**wanted) if wanted is not None else set()
    assert found_ids(stack, *scope_args, *filters) & ours == expected


class TestScopeAndWindow:
    def test_service_filter(self, stack, sent):
        """Traces are found through any of their services; a service Jaeger does not know matches nothing."""
        assert sent.ids() <= found_ids(stack, "--service", SERVICES_SERVICE)
        unknown = f"no-such-service-{uuid.uuid4().hex[:6]}"
        result = search(stack, "--service", unknown)
        assert result.returncode == EXIT_ERROR and result.stdout == ""
        assert result.stderr.startswith(
            f"otel-llm search: no trace matched --service {unknown} in the last 1h"
        )

    def test_limit_keeps_the_newest(self, stack, sent):
        """--limit N gives the N newest matching traces (by start), here of the three OpenAI traces."""
        openai = sorted((t for t in sent.all if t.arm == OPENAI_ARM), key=lambda t: t.start_us, reverse=True)
        assert len(openai) == 3
        for limit in (1, 2):
            result = search(
                stack, "--json", "--service", WORKER_SERVICE, "--arm", OPENAI_ARM, "--limit", str(limit)
            )
            assert result.returncode == 0, result.stderr
            assert [t["trace_id"] for t in json.loads(result.stdout)] == [t.trace_id for t in openai[:limit]]

    def test_lookback_includes_the_batch_and_excludes_the_older_request(self, stack, sent):
        """A lookback reaching back to the batch's start (plus half the gap) finds the batch, not the old
        request; a longer one finds both."""
        batch_start_s = min(trace.start_us for trace in sent.batch) / 1e6
        lookback_ms = int((time.time() - batch_start_s + GAP_S / 2) * 1000)
        found = found_ids(stack, "--service", WORKER_SERVICE, "--lookback", f"{lookback_ms}ms")
        assert {trace.trace_id for trace in sent.batch} <= found and sent.old.trace_id not in found
        assert sent.ids() <= found_ids(stack, "--service", WORKER_SERVICE, "--lookback", "15m")

    def test_lookback_shorter_than_the_traces_age_matches_nothing(self, stack, sent):
        """Once this run's last span is 3 s old, --lookback 1s finds nothing: exit 2, one line saying so."""
        last_end_s = max(trace.end_us for trace in sent.all) / 1e6
        poll(lambda: time.time() >= last_end_s + 3, timeout=30, message="this run's traces 3 s old")
        result = search(stack, "--service", WORKER_SERVICE, "--lookback", "1s")
        assert result.returncode == EXIT_ERROR and result.stdout == ""
        assert result.stderr == (
            f"otel-llm search: no trace matched --service {WORKER_SERVICE} in the last 1s "
            f"at {stack.jaeger_query_url}\n"
        )


class TestErrors:
    def test_nothing_matched_is_one_line_and_exit_2(self, stack, sent):
        """A provider nobody called: exit 2, nothing on stdout, one stderr line repeating the filter."""
        result = search(stack, "--provider", "cohere", "--lookback", "15m")
        assert result.returncode == EXIT_ERROR and result.stdout == ""
        assert result.stderr == (
            "otel-llm search: no trace matched --provider cohere in the last 15m "
            f"at {stack.jaeger_query_url}\n"
        )

    def test_unreachable_jaeger_is_one_line_and_exit_2(self, stack):
        """Nothing listening at the URL: exit 2 and one line naming the URL and `otel-llm stack up`."""
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            url = f"http://127.0.0.1:{probe.getsockname()[1]}"
        result = search(stack, "--provider", "openai", jaeger_url=url)
        assert result.returncode == EXIT_ERROR and result.stdout == ""
        assert result.stderr.count("\n") == 1 and f"cannot reach Jaeger at {url}" in result.stderr
        assert "otel-llm stack up" in result.stderr
