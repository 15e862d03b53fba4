"""``ReferenceApp``: the reference app's three processes on the test stack, for the end-to-end tests.

Services, worker and API run as subprocesses under ``opentelemetry-instrument`` with environment variables
only (``otel_llm.cli.demo_stack``'s process helpers: OTLP/gRPC to the stack's collector). The app stays up for
the ``with`` block so a test can send traffic, read answers and measure the worker; leaving the block stops
the processes with SIGTERM, which makes the launcher flush their telemetry.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO, Any

import requests

from otel_llm.cli.demo_stack import (
    API_SERVICE,
    SERVICES_SERVICE,
    WORKER_SERVICE,
    AppProcess,
    start_process,
    stop_processes,
    telemetry_env,
)

REQUEST_TIMEOUT_S = 10
ANSWER_TIMEOUT_S = 120
PAGE_SIZE = 4096


class ReferenceApp:
    """The app on ``stack``: ``graph`` is the worker's sync/async graph, ``env`` extra process variables."""

    def __init__(
        self,
        stack: Any,
        log_path: Path,
        *,
        graph: str = "sync",
        concurrency: int = 16,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self._stack = stack
        self._graph = graph
        self._concurrency = concurrency
        self._env = dict(env or {})
        self._processes: list[AppProcess] = []
        self.log_path = log_path
        self._log: IO[str] | None = None
        self.api_url = ""
        self.worker_pid = 0

    def _environment(self, service: str) -> dict[str, str]:
        return {**telemetry_env(service, self._stack.otlp_grpc_endpoint), **self._env}

    def __enter__(self) -> ReferenceApp:
        self._log = open(self.log_path, "a")  # noqa: SIM115 - closed in stop()
        try:
            services = start_process(
                SERVICES_SERVICE,
                "otel_llm.demo.services",
                [],
                self._environment(SERVICES_SERVICE),
                self._log,
                True,
            )
            self._processes.append(services)
            worker = start_process(
                WORKER_SERVICE,
                "otel_llm.demo.worker",
                [
                    "--redis-url",
                    self._stack.redis_url,
                    "--graph",
                    self._graph,
                    "--concurrency",
                    str(self._concurrency),
                    "--grpc-target",
                    f"127.0.0.1:{services.first_line['grpc_port']}",
                    "--http-url",
                    f"http://127.0.0.1:{services.first_line['http_port']}",
                ],
                self._environment(WORKER_SERVICE),
                self._log,
                True,
            )
            self._processes.append(worker)
            self.worker_pid = int(worker.first_line["pid"])
            api = start_process(
                API_SERVICE,
                "otel_llm.demo.api",
                ["--port", "0", "--redis-url", self._stack.redis_url],
                self._environment(API_SERVICE),
                self._log,
                True,
            )
            self._processes.append(api)
            self.api_url = f"http://127.0.0.1:{api.first_line['port']}/api/v1/chat"
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def stop(self) -> None:
        """SIGTERM every process (they flush their telemetry on the way out)."""
        stop_processes(self._processes)
        self._processes.clear()
        if self._log is not None:
            self._log.close()

    def chat(self, message: str, session_id: str, user_id: str) -> dict[str, Any]:
        """POST one chat request; the accepted job (job_id, provider, model)."""
        response = requests.post(
            self.api_url,
            json={"message": message, "session_id": session_id, "user_id": user_id},
            timeout=REQUEST_TIMEOUT_S,
        )
        response.raise_for_status()
        return response.json()

    def stream_answer(self, job_id: str) -> dict[str, Any]:
        """Reads the job's server-sent events to the end: the final event's data plus the token count."""
        tokens = 0
        with requests.get(
            f"{self.api_url}/{job_id}/stream", stream=True, timeout=ANSWER_TIMEOUT_S
        ) as response:
            response.raise_for_status()
            event = None
            for line in response.iter_lines(decode_unicode=True):
                if line.startswith("event: "):
                    event = line.removeprefix("event: ")
                elif line.startswith("data: "):
                    data = json.loads(line.removeprefix("data: "))
                    if event == "token":
                        tokens += 1
                    elif event in ("done", "error"):
                        return {"status": event, "tokens": tokens, **data}
        return {"status": "truncated", "tokens": tokens}

    def converse(self, message: str, session_id: str, user_id: str) -> dict[str, Any]:
        """One request end to end: POST, then the streamed answer."""
        accepted = self.chat(message, session_id, user_id)
        return {**accepted, **self.stream_answer(accepted["job_id"])}

    def load(self, bodies: list[tuple[str, str, str]], concurrency: int) -> list[dict[str, Any]]:
        """``converse`` for each (message, session, user), ``concurrency`` at a time; results in order."""
        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            return list(pool.map(lambda body: self.converse(*body), bodies))

    def worker_rss_bytes(self) -> int:
        """The worker's resident set size from /proc (the launcher execs Python: same pid)."""
        with open(f"/proc/{self.worker_pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        raise AssertionError(f"no VmRSS for pid {self.worker_pid}")
