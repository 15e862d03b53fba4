"""Where search, ab and trace find Jaeger and Prometheus: flag, variable, the recorded stack, default."""

from __future__ import annotations

from otel_llm.cli import endpoints
from otel_llm.stack.run import JAEGER_QUERY_HTTP, PROMETHEUS, STATE_DIR_ENV, Stack


def recorded_stack(state_dir, jaeger_port: int, prometheus_port: int) -> dict[str, str]:
    """An environment whose state dir holds the stack.json `otel-llm stack up` writes for those ports."""
    environ = {JAEGER_QUERY_HTTP.env_var: str(jaeger_port), PROMETHEUS.env_var: str(prometheus_port)}
    Stack.create(state_dir, environ)._save()  # what `up` records before it starts anything
    return {STATE_DIR_ENV: str(state_dir)}


class TestResolution:
    def test_recorded_ports_are_used_when_nothing_else_is_given(self, tmp_path):
        """A stack started on other ports is found from its stack.json."""
        environ = recorded_stack(tmp_path, 26686, 29090)
        assert endpoints.jaeger_url(None, environ) == "http://127.0.0.1:26686"
        assert endpoints.prometheus_url(None, environ) == "http://127.0.0.1:29090"

    def test_flag_then_variable_win_over_the_recorded_stack(self, tmp_path):
        """The flag wins over the variable, the variable over the recorded stack."""
        environ = {**recorded_stack(tmp_path, 26686, 29090), endpoints.JAEGER_URL_ENV: "http://jaeger:1"}
        assert endpoints.jaeger_url(None, environ) == "http://jaeger:1"
        assert endpoints.jaeger_url("http://flag:2", environ) == "http://flag:2"

    def test_no_or_unreadable_record_gives_the_default(self, tmp_path):
        """No stack.json, or one that is not a stack's, falls back to the default port."""
        environ = {STATE_DIR_ENV: str(tmp_path)}
        assert endpoints.jaeger_url(None, environ) == endpoints.DEFAULT_JAEGER_URL
        (tmp_path / "stack.json").write_text('{"env": {}}')
        assert endpoints.prometheus_url(None, environ) == endpoints.DEFAULT_PROMETHEUS_URL
