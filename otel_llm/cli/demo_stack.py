"""``otel-llm demo --stack``: the reference app as separate processes on the real local stack.

Starts (or reuses) the stack like ``otel-llm stack up`` (``otel_llm.stack.run``), then the app's three
processes under ``opentelemetry-instrument`` with environment variables only (services, worker, API: ``python
-m otel_llm.demo.<name>``, OTLP to the stack's collector), sends the chat requests to the API, waits for every
answer and reads the requests' traces back from Jaeger while the app still runs (its roll-up stage holds each
trace for a short window before exporting it), then stops the app processes and prints the traces with the
same renderer as the embedded demo, then the endpoints to explore. The stack
keeps running afterwards (``otel-llm stack down`` stops it).

Rates after a short run: Prometheus sees a counter's increase only between two samples of one series, and
each process's series are new (its own ``service.instance.id``, the ``instance`` label). So the first
request of each experiment arm is sent alone, and the rest only once Prometheus holds the worker's GenAI call
count of every arm: ``rate()`` / ``increase()`` over the run then count the rest of the load, however short
it is. (The Prometheus of the stack, 2.42 from Debian, cannot take a series' start time as a zero sample.)
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import IO, Any

from otel_llm import semconv

API_SERVICE = "chat-api"
WORKER_SERVICE = "chat-worker"
SERVICES_SERVICE = "chat-services"
JOB_ID_ATTRIBUTE = "langsmith.metadata.job_id"  # the seed's run config puts job_id into the run metadata
STARTUP_TIMEOUT_S = 60.0
ANSWER_TIMEOUT_S = 120.0
TRACES_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0
SCRAPE_TIMEOUT_S = 60.0
# The worker's GenAI call count in Prometheus (SDK histogram after the collector's OTLP -> Prometheus naming).
CALL_COUNT_METRIC = "gen_ai_client_operation_duration_seconds_count"
POLL_INTERVAL_S = 0.25
DEMO_MESSAGES = (
    "How do I recycle a plastic bottle?",
    "Will it rain tomorrow in Seoul?",
    "Tell me about your character.",
    "Where do glass jars go?",
)
EXIT_FAILED = 1


class DemoStackError(Exception):
    """A failure with a one-line message for the user."""


@dataclass
class AppProcess:
    name: str
    process: subprocess.Popen
    first_line: Mapping[str, Any]


# LangSmith's tracing on in OTel mode, as the seed app runs it: langsmith needs no key and makes no network
# call there, and otel-llm's LangChain instrumentation keeps it from tracing the runs a second time.
LANGSMITH_OTEL_ENV = {"LANGSMITH_TRACING": "true", "LANGSMITH_TRACING_MODE": "otel"}


def telemetry_env(service: str, otlp_grpc_endpoint: str, instance_id: str | None = None) -> dict[str, str]:
    """The environment of one app process: standard OTEL_* variables, OTLP/gRPC to the collector, LangSmith
    in OTel mode (``LANGSMITH_OTEL_ENV``), and ``service.instance.id`` added to the resource when given."""
    resource = os.environ.get("OTEL_RESOURCE_ATTRIBUTES", "")
    if instance_id is not None:
        resource = ",".join(filter(None, (resource, f"service.instance.id={instance_id}")))
    return {
        **os.environ,
        **LANGSMITH_OTEL_ENV,
        "OTEL_SERVICE_NAME": service,
        "OTEL_RESOURCE_ATTRIBUTES": resource,
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://{otlp_grpc_endpoint}",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_METRICS_EXPORTER": "otlp",
        "OTEL_LOGS_EXPORTER": "none",
        "OTEL_BSP_SCHEDULE_DELAY": "200",
        "OTEL_METRIC_EXPORT_INTERVAL": "2000",
    }


def _instrument_command(module: str, args: Sequence[str]) -> list[str]:
    launcher = os.path.join(os.path.dirname(sys.executable), "opentelemetry-instrument")
    return [launcher, sys.executable, "-m", module, *args]


def start_process(
    name: str, module: str, args: Sequence[str], env: Mapping[str, str], log: IO[str], expects_json_line: bool
) -> AppProcess:
    """Start an app process in its own process group; if it announces its ports, wait for that JSON line."""
    process = subprocess.Popen(
        _instrument_command(module, args),
        env=dict(env),
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
        start_new_session=True,
    )
    first_line: Mapping[str, Any] = {}
    if expects_json_line:
        line = process.stdout.readline() if process.stdout is not None else ""
        try:
            first_line = json.loads(line)
        except ValueError:
            stop_processes([AppProcess(name, process, {})])
            raise DemoStackError(f"{name} did not start (see {log.name})") from None
    return AppProcess(name, process, first_line)


def stop_processes(processes: Sequence[AppProcess]) -> None:
    """SIGINT each process group, SIGKILL what outlives the timeout.

    SIGINT, not SIGTERM: uvicorn re-raises the signal it caught after its graceful shutdown, and only SIGINT
    (as KeyboardInterrupt) lets the interpreter run the launcher's exit handler that flushes the telemetry.
    """
    for app in processes:
        if app.process.poll() is None:
            os.killpg(app.process.pid, signal.SIGINT)
    for app in processes:
        try:
            app.process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(app.process.pid, signal.SIGKILL)
            app.process.wait()


def _http_json(url: str, body: Mapping[str, Any] | None = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def wait_for(probe: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll ``probe`` until it returns something truthy; DemoStackError naming ``what`` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = probe()
        except OSError:
            value = None
        if value:
            return value
        if time.monotonic() >= deadline:
            raise DemoStackError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(POLL_INTERVAL_S)


def send_requests(
    api_url: str, sessions: Sequence[str], first: int, total: int, progress: Callable[[str], None]
) -> list[dict[str, Any]]:
    """POST one chat request per session (numbered from ``first`` of ``total``), then wait until each answer
    is done; the finished jobs."""
    jobs = []
    for index, session in enumerate(sessions, start=first):
        body = {
            "message": DEMO_MESSAGES[index % len(DEMO_MESSAGES)],
            "session_id": session,
            "user_id": f"demo-user-{index}",
        }
        accepted = _http_json(f"{api_url}/api/v1/chat", body)
        progress(
            f"request {index + 1}/{total}: job {accepted.get('job_id')} -> {accepted.get('provider')} "
            f"{accepted.get('model')}"
        )
        jobs.append(accepted)
    finished = []
    for job in jobs:

        def done(job_id: str = job["job_id"]) -> Any:
            state = _http_json(f"{api_url}/api/v1/chat/{job_id}")
            return state if state.get("status") in ("done", "error") else None

        state = wait_for(done, ANSWER_TIMEOUT_S, f"the answer of job {job['job_id']}")
        finished.append({**job, **state})
        progress(f"job {job['job_id']} {state.get('status')}")
    return finished


def wait_for_scrape(prometheus_url: str, instance_id: str, arms: Sequence[str]) -> None:
    """Until Prometheus holds the call count of every arm in ``arms`` from the process ``instance_id``."""
    from otel_llm.ab.sources import ARM_LABEL, PrometheusSource, promql_string

    prometheus = PrometheusSource(prometheus_url)
    promql = f"count by ({ARM_LABEL}) ({CALL_COUNT_METRIC}{{instance={promql_string(instance_id)}}})"

    def scraped() -> bool:
        return set(arms) <= {labels.get(ARM_LABEL) for labels, _ in prometheus.query(promql)}

    wait_for(scraped, SCRAPE_TIMEOUT_S, "Prometheus to scrape the first requests' metrics")


def run_load(
    api_url: str, prometheus_url: str, worker_instance: str, count: int, progress: Callable[[str], None]
) -> list[dict[str, Any]]:
    """``count`` requests covering the arms in turn (the API's experiment: ``OTEL_LLM_EXPERIMENT_ARMS`` when
    set, else the demo's): the first of each arm, a scrape, then the rest."""
    from otel_llm.demo.api import demo_experiment
    from otel_llm.demo.embedded import sessions_covering_arms
    from otel_llm.experiment import experiment_from_env

    experiment = experiment_from_env() or demo_experiment()
    sessions = sessions_covering_arms(experiment, count)
    first = min(len(experiment.arms), count)
    jobs = send_requests(api_url, sessions[:first], 0, count, progress)
    if first < count:
        progress("waiting for Prometheus to scrape the first requests' metrics (so rates see the rest)")
        wait_for_scrape(prometheus_url, worker_instance, [arm.name for arm in experiment.arms[:first]])
        jobs += send_requests(api_url, sessions[first:], first, count, progress)
    return jobs


def read_traces(jaeger_url: str, job_ids: Sequence[str], lookback_us: int) -> list[Any]:
    """The jobs' traces (by job_id run metadata), once each has its LLM calls and stopped growing."""
    from otel_llm.cli.search import JaegerClient, TraceFilter, search

    client = JaegerClient(jaeger_url)
    previous: dict[str, int] = {}

    def complete() -> list[Any] | None:
        traces = search(client, TraceFilter(), [API_SERVICE], lookback_us, limit=len(job_ids) * 4)
        by_job = {job_id: trace for trace in traces for job_id in trace.attribute_values(JOB_ID_ATTRIBUTE)}
        found = [by_job.get(job_id) for job_id in job_ids]
        if any(trace is None or trace.call_count == 0 for trace in found):
            return None
        sizes = {trace.trace_id: len(trace.spans) for trace in found}
        stable = sizes == previous
        previous.clear()
        previous.update(sizes)
        return found if stable else None

    return wait_for(complete, TRACES_TIMEOUT_S, "the requests' traces in Jaeger")


def run_on_stack(requests: int, as_json: bool, progress: Callable[[str], None]) -> int:
    from otel_llm.ab.sources import SourceError
    from otel_llm.cli.demo import print_report
    from otel_llm.cli.trace import command as trace_command
    from otel_llm.stack.run import Stack, StackError, default_state_dir

    started_us = time.time_ns() // 1000
    state_dir = default_state_dir()
    stack = Stack.load(state_dir) or Stack.create(state_dir)
    if all(stack.healthy(component.name) for component in stack.components):
        progress(f"using the running stack in {state_dir}")
    else:
        progress(f"starting the stack (collector, Jaeger, Prometheus, Redis) in {state_dir}")
    try:
        stack.up()
    except (StackError, OSError) as exc:
        print(f"otel-llm demo --stack: {exc}", file=sys.stderr)
        return EXIT_FAILED
    log_path = stack.state_dir / "logs" / "demo-app.log"
    processes: list[AppProcess] = []
    worker_instance = uuid.uuid4().hex
    try:
        with open(log_path, "a") as log:
            progress(f"starting the app under opentelemetry-instrument (logs: {log_path})")
            services = start_process(
                SERVICES_SERVICE,
                "otel_llm.demo.services",
                [],
                telemetry_env(SERVICES_SERVICE, stack.otlp_grpc_endpoint, uuid.uuid4().hex),
                log,
                True,
            )
            processes.append(services)
            processes.append(
                start_process(
                    WORKER_SERVICE,
                    "otel_llm.demo.worker",
                    [
                        "--redis-url",
                        stack.redis_url,
                        "--grpc-target",
                        f"127.0.0.1:{services.first_line['grpc_port']}",
                        "--http-url",
                        f"http://127.0.0.1:{services.first_line['http_port']}",
                    ],
                    telemetry_env(WORKER_SERVICE, stack.otlp_grpc_endpoint, worker_instance),
                    log,
                    False,
                )
            )
            api = start_process(
                API_SERVICE,
                "otel_llm.demo.api",
                ["--port", "0", "--redis-url", stack.redis_url],
                telemetry_env(API_SERVICE, stack.otlp_grpc_endpoint, uuid.uuid4().hex),
                log,
                True,
            )
            processes.append(api)
            api_url = f"http://127.0.0.1:{api.first_line['port']}"
            jobs = run_load(api_url, stack.prometheus_url, worker_instance, requests, progress)
            progress("reading the requests' traces back from Jaeger")
            lookback_us = time.time_ns() // 1000 - started_us + 60_000_000
            traces = read_traces(stack.jaeger_query_url, [job["job_id"] for job in jobs], lookback_us)
    except (DemoStackError, SourceError, OSError, KeyError) as exc:
        print(f"otel-llm demo --stack: {exc}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        stop_processes(processes)
    results = [_JobResult(job) for job in jobs]
    endpoints = {
        "Jaeger query API": stack.jaeger_query_url,
        "Prometheus": stack.prometheus_url,
        "OTLP gRPC": stack.otlp_grpc_endpoint,
        "OTLP HTTP": stack.otlp_http_endpoint,
        "search": "otel-llm search --provider aws.bedrock",
        "trace tree": trace_command(traces[0].trace_id),
    }
    header = f"{len(traces)} traces from {requests} requests, read from Jaeger"
    print_report(traces, results, as_json, header, endpoints)
    return 0


class _JobResult:
    """A finished job as the report's request rows read it."""

    def __init__(self, job: Mapping[str, Any]) -> None:
        self.job_id = job.get("job_id")
        self.provider = semconv.normalize_provider(job.get("provider"))
        self.model = job.get("model")
        self.answer = job.get("text") or job.get("answer")  # GET /api/v1/chat/{job_id} names it "text"
