"""otel_llm.ottl: the collector's generated OTTL blocks (today transform/redact) are current and rewritten in
place (their behaviour is proven by tests/integration/test_redaction.py in the real collector)."""

from __future__ import annotations

import pytest
import yaml

from otel_llm import ottl, redaction
from otel_llm.stack import paths


class TestCollectorConfigIsCurrent:
    def test_redaction_statements_equal_the_rule_table_and_run_in_both_trace_pipelines(self):
        """transform/redact holds what otel_llm.redaction renders now, ahead of the llm_rollup processor."""
        config = yaml.safe_load(paths.COLLECTOR_CONFIG.read_text())
        assert config["processors"][redaction.TRANSFORM_PROCESSOR]["trace_statements"] == \
            redaction.transform_config()
        for name, rollup in (("traces", "llm_rollup"), ("traces/langsmith", "llm_rollup/langsmith")):
            processors = config["service"]["pipelines"][name]["processors"]
            assert processors.index(redaction.TRANSFORM_PROCESSOR) < processors.index(rollup)

    def test_check_reports_the_file_current(self):
        """`python -m otel_llm.ottl --check` passes on the committed config."""
        assert ottl.main(["--check"]) == 0


class TestRewrite:
    def test_rewrite_replaces_only_the_marked_block(self, tmp_path):
        """--write regenerates the block in place, keeping its indent and everything around it."""
        config = tmp_path / "config.yaml"
        config.write_text(f"a: 1\nb: 2\nd:\n    {ottl.REDACT_BEGIN_MARKER}\n    - stale\n"
                          f"    {ottl.END_MARKER}\ne: 3\n")
        assert ottl.rewrite(config) is True
        text = config.read_text()
        assert text.startswith("a: 1\nb: 2\n") and "e: 3\n" in text and "stale" not in text
        assert yaml.safe_load(text)["d"] == redaction.transform_config()
        assert ottl.rewrite(config) is False and ottl.is_current(config)

    def test_file_without_markers_is_an_error(self, tmp_path):
        """A config without the markers is rejected with the markers named."""
        config = tmp_path / "config.yaml"
        config.write_text("processors: {}\n")
        with pytest.raises(ValueError, match="BEGIN GENERATED"):
            ottl.rewrite(config)
