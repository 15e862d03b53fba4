"""Token-stream metrics: iterator wrappers, the tracker and the LangChain callback handler."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from opentelemetry import baggage, context
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from otel_llm import semconv
from otel_llm.metrics import streaming


@pytest.fixture(autouse=True)
def fresh_context():
    """Each test starts with no current span or baggage, whatever an earlier test left attached."""
    token = context.attach(context.Context())
    yield
    context.detach(token)



class FakeClock:
    """A clock the test advances by hand, so durations are exact."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class TickingStream:
    """Yields tokens, advancing the fake clock by ``step`` before each one."""

    def __init__(
        self, clock: FakeClock, tokens: list[str], step: float, fail_after: int | None = None
    ) -> None:
        self.clock, self.tokens, self.step, self.fail_after = clock, tokens, step, fail_after

    def __iter__(self):
        for index, token in enumerate(self.tokens):
            if self.fail_after is not None and index == self.fail_after:
                raise RuntimeError("provider dropped the stream")
            self.clock.now += self.step
            yield token


@pytest.fixture
def reader():
    return InMemoryMetricReader()


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def stream_metrics(reader, clock):
    return streaming.StreamMetrics(MeterProvider(metric_readers=[reader]), clock=clock)


def points(reader, name):
    """Data points of metric ``name`` as (attributes, point) pairs."""
    data = reader.get_metrics_data()
    found = []
    for resource_metrics in data.resource_metrics if data else ():
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                if metric.name == name:
                    found.extend((dict(p.attributes), p) for p in metric.data.data_points)
    return found


def only_point(reader, name):
    found = points(reader, name)
    assert len(found) == 1, found
    return found[0]


class TestSyncWrapper:
    def test_items_pass_through_unchanged(self, stream_metrics):
        """The wrapper yields exactly the tokens of the wrapped stream."""
        assert list(streaming.track_stream(iter(["a", "b", "c"]), stream_metrics, model="gpt-4o-mini")) == [
            "a",
            "b",
            "c",
        ]

    def test_successful_stream_records_counts_duration_and_labels(self, reader, clock, stream_metrics):
        """A finished stream records tokens, a request, duration, token count and provider from the model."""
        stream = TickingStream(clock, ["t"] * 5, step=0.1)
        list(streaming.track_stream(stream, stream_metrics, model="gpt-4o-mini", node="answer"))
        attrs, tokens = only_point(reader, "chat_stream_tokens")
        assert tokens.value == 5
        assert attrs == {"provider": "openai", "model": "gpt-4o-mini", "node": "answer", "status": "success"}
        assert only_point(reader, "chat_stream_requests")[1].value == 1
        duration = only_point(reader, "chat_stream_duration")[1]
        assert duration.sum == pytest.approx(0.5)
        assert only_point(reader, "chat_stream_token_count")[1].sum == 5
        assert only_point(reader, "chat_stream_token_interval")[1].sum == pytest.approx(0.1)

    def test_semconv_chunk_metrics_for_raw_streams(self, reader, clock, stream_metrics):
        """Time to first chunk counts from the wrap call; time per chunk is the mean gap after the first."""
        stream = TickingStream(clock, ["t"] * 3, step=0.2)
        list(
            streaming.track_stream(
                stream, stream_metrics, provider="bedrock", model="anthropic.claude-3-haiku-20240307-v1:0"
            )
        )
        attrs, first = only_point(reader, semconv.METRIC_TIME_TO_FIRST_CHUNK)
        assert first.sum == pytest.approx(0.2)
        assert attrs[semconv.GEN_AI_PROVIDER_NAME] == "aws.bedrock"
        assert attrs[semconv.GEN_AI_REQUEST_MODEL] == "anthropic.claude-3-haiku-20240307-v1:0"
        assert only_point(reader, semconv.METRIC_TIME_PER_OUTPUT_CHUNK)[1].sum == pytest.approx(0.2)

    def test_chunk_metrics_off_when_asked(self, reader, clock, stream_metrics):
        """record_chunk_metrics=False leaves the GenAI chunk metrics to another instrumentation."""
        list(
            streaming.track_stream(
                TickingStream(clock, ["t"] * 3, 0.1), stream_metrics, record_chunk_metrics=False
            )
        )
        assert points(reader, semconv.METRIC_TIME_TO_FIRST_CHUNK) == []
        assert only_point(reader, "chat_stream_requests")[1].value == 1

    def test_error_status_and_exception_propagates(self, reader, clock, stream_metrics):
        """A failing stream re-raises and records status=error with the tokens seen so far."""
        stream = TickingStream(clock, ["t"] * 5, step=0.1, fail_after=2)
        with pytest.raises(RuntimeError):
            list(streaming.track_stream(stream, stream_metrics, model="gpt-4o"))
        attrs, tokens = only_point(reader, "chat_stream_tokens")
        assert (attrs["status"], tokens.value) == ("error", 2)

    def test_consumer_stopping_early_is_cancelled(self, reader, clock, stream_metrics):
        """Closing the wrapper before the end records status=cancelled."""
        wrapped = streaming.track_stream(TickingStream(clock, ["t"] * 5, 0.1), stream_metrics)
        next(wrapped)
        wrapped.close()
        assert only_point(reader, "chat_stream_requests")[0]["status"] == "cancelled"

    def test_active_streams_go_up_while_reading_and_back_down(self, reader, clock, stream_metrics):
        """chat_stream_active is 1 while a stream is read and 0 after it ends."""
        wrapped = streaming.track_stream(TickingStream(clock, ["t"] * 2, 0.1), stream_metrics)
        next(wrapped)
        assert only_point(reader, "chat_stream_active")[1].value == 1
        list(wrapped)
        assert only_point(reader, "chat_stream_active")[1].value == 0

    def test_unstarted_stream_records_nothing(self, reader, stream_metrics):
        """A wrapper that is never iterated leaves no active stream and no request behind."""
        streaming.track_stream(iter(["a"]), stream_metrics)
        assert points(reader, "chat_stream_active") == []
        assert points(reader, "chat_stream_requests") == []

    def test_empty_stream_records_zero_tokens_and_no_chunk_metrics(self, reader, stream_metrics):
        """An empty stream is one request with zero tokens and no time to first chunk."""
        list(streaming.track_stream(iter([]), stream_metrics))
        assert only_point(reader, "chat_stream_token_count")[1].sum == 0
        assert points(reader, semconv.METRIC_TIME_TO_FIRST_CHUNK) == []
        assert points(reader, "chat_stream_tokens") == []


class TestLabels:
    def test_experiment_arm_from_baggage(self, reader, stream_metrics):
        """The experiment arm in baggage becomes a label of every stream metric."""
        token = context.attach(baggage.set_baggage(semconv.EXPERIMENT_ARM, "openai:gpt-4o-mini"))
        try:
            list(streaming.track_stream(iter(["a"]), stream_metrics, model="gpt-4o-mini"))
        finally:
            context.detach(token)
        assert only_point(reader, "chat_stream_tokens")[0][semconv.EXPERIMENT_ARM] == "openai:gpt-4o-mini"
        assert only_point(reader, semconv.METRIC_TIME_TO_FIRST_CHUNK)[0][semconv.EXPERIMENT_ARM] == (
            "openai:gpt-4o-mini"
        )

    @pytest.mark.parametrize("bad", [None, "", 42, ["x"] * 0, b"\xff"])
    def test_bad_label_values_have_defaults(self, bad):
        """None, empty and non-string labels become unknown/answer or their text, never an exception."""
        labels = streaming.stream_labels(bad, bad, bad)
        assert set(labels) == {"provider", "model", "node"}
        assert all(isinstance(value, str) and value for value in labels.values())

    def test_huge_model_is_capped(self):
        """A huge model id is capped at semconv.MAX_MODEL_LENGTH."""
        assert len(streaming.stream_labels(model="m" * 10_000)["model"]) == semconv.MAX_MODEL_LENGTH

    def test_invalid_clock_is_rejected(self):
        """A non-callable clock fails at construction, naming the parameter."""
        with pytest.raises(ValueError, match="clock"):
            streaming.StreamMetrics(MeterProvider(), clock=5)  # type: ignore[arg-type]


class TestAsyncWrapper:
    def test_async_stream_records_like_sync(self, reader, clock, stream_metrics):
        """The async wrapper passes tokens through and records the same metrics."""

        async def source():
            for token in ["x", "y", "z"]:
                clock.now += 0.05
                yield token

        async def consume():
            return [t async for t in streaming.track_async_stream(source(), stream_metrics, model="gpt-4o")]

        assert asyncio.run(consume()) == ["x", "y", "z"]
        assert only_point(reader, "chat_stream_tokens")[1].value == 3
        assert only_point(reader, semconv.METRIC_TIME_TO_FIRST_CHUNK)[1].sum == pytest.approx(0.05)

    def test_async_error_status(self, reader, stream_metrics):
        """An async stream that raises records status=error and re-raises."""

        async def source():
            yield "x"
            raise ValueError("boom")

        async def consume():
            return [t async for t in streaming.track_async_stream(source(), stream_metrics)]

        with pytest.raises(ValueError):
            asyncio.run(consume())
        assert only_point(reader, "chat_stream_requests")[0]["status"] == "error"


class TestTrackerAndRecovery:
    def test_publish_latency_and_recovery(self, reader, stream_metrics):
        """Publish latencies go to chat_stream_token_latency; recoveries to chat_stream_recovery, labelled
        like the stream (provider, model, node) plus type and status."""
        labels = streaming.stream_labels("openai", "gpt-4o")
        tracker = streaming.StreamTracker(stream_metrics, labels)
        tracker.record_publish(0.004)
        stream_metrics.record_recovery(streaming.RECOVERY_CATCH_UP, labels=labels)
        assert only_point(reader, "chat_stream_token_latency")[1].sum == pytest.approx(0.004)
        attrs, recovery = only_point(reader, "chat_stream_recovery")
        assert attrs == {
            "provider": "openai",
            "model": "gpt-4o",
            "node": "answer",
            "type": "catch_up",
            "status": "success",
        }
        assert recovery.value == 1

    def test_recovery_without_labels_takes_the_current_experiment(self, reader, stream_metrics):
        """Without stream labels a recovery is labelled unknown/answer and the experiment in baggage."""
        ctx = baggage.set_baggage(semconv.EXPERIMENT_ID, "exp-1")
        token = context.attach(baggage.set_baggage(semconv.EXPERIMENT_ARM, "openai:gpt-4o", ctx))
        try:
            stream_metrics.record_recovery(streaming.RECOVERY_SNAPSHOT, streaming.STATUS_ERROR)
        finally:
            context.detach(token)
        attrs, _ = only_point(reader, "chat_stream_recovery")
        assert attrs == {
            "provider": "unknown",
            "model": "unknown",
            "node": "answer",
            semconv.EXPERIMENT_ID: "exp-1",
            semconv.EXPERIMENT_ARM: "openai:gpt-4o",
            "type": "snapshot",
            "status": "error",
        }

    def test_finish_twice_records_once(self, reader, stream_metrics):
        """A second finish() is ignored."""
        tracker = streaming.StreamTracker(stream_metrics, streaming.stream_labels())
        tracker.token()
        tracker.finish()
        tracker.finish("error")
        assert only_point(reader, "chat_stream_requests")[1].value == 1


class TestLangChainHandler:
    def test_streamed_chat_run_records_stream_metrics_without_chunk_metrics(
        self, reader, clock, stream_metrics
    ):
        """Token callbacks of a chat run become one stream labelled from ls_* and langgraph_node metadata."""
        handler = streaming.StreamingCallbackHandler(stream_metrics)
        run_id = uuid.uuid4()
        handler.on_chat_model_start(
            {},
            [[]],
            run_id=run_id,
            metadata={
                "ls_provider": "amazon_bedrock",
                "ls_model_name": "anthropic.claude-3-haiku-20240307-v1:0",
                "langgraph_node": "answer",
            },
        )
        for token in "abcd":
            clock.now += 0.1
            handler.on_llm_new_token(token, run_id=run_id)
        handler.on_llm_end(None, run_id=run_id)
        attrs, tokens = only_point(reader, "chat_stream_tokens")
        assert tokens.value == 4
        assert attrs["provider"] == "aws.bedrock" and attrs["node"] == "answer"
        assert points(reader, semconv.METRIC_TIME_TO_FIRST_CHUNK) == []

    def test_unstreamed_run_records_nothing(self, reader, stream_metrics):
        """A chat run without token callbacks is not a stream."""
        handler = streaming.StreamingCallbackHandler(stream_metrics)
        run_id = uuid.uuid4()
        handler.on_llm_start({}, ["hi"], run_id=run_id, metadata=None)
        handler.on_llm_end(None, run_id=run_id)
        assert points(reader, "chat_stream_requests") == []

    def test_errored_run_has_error_status(self, reader, stream_metrics):
        """on_llm_error after tokens records status=error."""
        handler = streaming.StreamingCallbackHandler(stream_metrics)
        run_id = uuid.uuid4()
        handler.on_chat_model_start({}, [[]], run_id=run_id, metadata="not a mapping")
        handler.on_llm_new_token("a", run_id=run_id)
        handler.on_llm_error(RuntimeError("x"), run_id=run_id)
        assert only_point(reader, "chat_stream_requests")[0]["status"] == "error"


class TestPublishingStream:
    def test_sync_publish_counts_tokens_and_times_sampled_publishes(self, reader, clock, stream_metrics):
        """Each publish_token counts a token; the first publish and every PUBLISH_SAMPLE_EVERY-th after it
        are timed; the end records the stream with its mean token interval."""
        published = []
        every = streaming.PUBLISH_SAMPLE_EVERY

        def publish(entry):
            clock.now += 0.002 if len(published) % every == 0 else 0.001
            published.append(entry)

        tokens = [str(index) for index in range(2 * every + 1)]
        with streaming.publishing_stream(
            publish, provider="openai", model="gpt-4o-mini", node="answer", stream_metrics=stream_metrics
        ) as publish_token:
            for token in tokens:
                publish_token({"token": token})
        assert [e["token"] for e in published] == tokens
        latency = only_point(reader, "chat_stream_token_latency")[1]
        # Timed: publishes 1, every + 1 and 2 * every + 1.
        assert (latency.count, latency.sum) == (3, pytest.approx(0.006))
        attrs, counted = only_point(reader, "chat_stream_tokens")
        assert counted.value == len(tokens) and attrs["status"] == "success" and attrs["node"] == "answer"
        interval = only_point(reader, "chat_stream_token_interval")[1]
        first_to_last = 2 * 0.002 + (len(tokens) - 3) * 0.001  # the publishes before the last token's
        assert interval.sum == pytest.approx(first_to_last / (len(tokens) - 1))
        assert only_point(reader, "chat_stream_active")[1].value == 0
        assert points(reader, semconv.METRIC_TIME_TO_FIRST_CHUNK) == []

    def test_async_publish_and_error_status(self, reader, clock, stream_metrics):
        """An async publish is timed when awaited; an exception in the block records status=error."""

        async def publish(entry):
            clock.now += 0.001

        async def run():
            with streaming.publishing_stream(publish, stream_metrics=stream_metrics) as publish_token:
                await publish_token({"token": "x"})
                raise RuntimeError("graph failed")

        with pytest.raises(RuntimeError):
            asyncio.run(run())
        assert only_point(reader, "chat_stream_token_latency")[1].sum == pytest.approx(0.001)
        assert only_point(reader, "chat_stream_requests")[0]["status"] == "error"
        assert only_point(reader, "chat_stream_active")[1].value == 0
