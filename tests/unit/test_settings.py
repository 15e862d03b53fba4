"""OTEL_LLM_* parsing: defaults, accepted values, and one warning per bad variable naming what it accepts."""

from __future__ import annotations

import dataclasses
import logging

import pytest

from otel_llm import settings
from otel_llm.arms import Arm
from otel_llm.settings import (
    DEFAULT_BAGGAGE_KEYS,
    SETTING_VARIABLES,
    Settings,
    env_bool,
    env_choice,
    env_csv,
    env_float,
    env_int,
    load_settings,
)


@pytest.fixture(autouse=True)
def fresh_warnings():
    settings.reset_warnings()
    yield
    settings.reset_warnings()


def warnings_for(caplog, name: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and name in r.getMessage()]


class TestLoadSettings:
    def test_defaults_without_variables(self):
        """An empty environment gives the documented defaults."""
        loaded = load_settings({})
        assert loaded == Settings()
        assert loaded.baggage_keys == DEFAULT_BAGGAGE_KEYS
        assert (loaded.rollup_window_ms, loaded.rollup_max_traces) == (2000, 10000)
        assert loaded.rollup_max_age_ms == 60000
        assert loaded.baggage_trust_incoming is False and loaded.enabled is True
        assert loaded.span_metrics_skip_scopes == ()  # recordings decide (otel_llm.metrics.recorded)

    def test_every_variable_is_read(self):
        """Each OTEL_LLM_* variable reaches its field."""
        loaded = load_settings({
            "OTEL_LLM_ENABLED": "false",
            "OTEL_LLM_BAGGAGE_KEYS": "a,b",
            "OTEL_LLM_BAGGAGE_MAX_VALUE_LENGTH": "12",
            "OTEL_LLM_BAGGAGE_TRUST_INCOMING": "TRUE",
            "OTEL_LLM_ROLLUP": "off",
            "OTEL_LLM_ROLLUP_WINDOW_MS": "0",
            "OTEL_LLM_ROLLUP_MAX_TRACES": "5",
            "OTEL_LLM_ROLLUP_MAX_SPANS_PER_TRACE": "7",
            "OTEL_LLM_ROLLUP_MAX_BUFFERED_SPANS": "11",
            "OTEL_LLM_ROLLUP_MAX_AGE_MS": "900",
            "OTEL_LLM_METRICS_CARDINALITY_LIMIT": "3",
            "OTEL_LLM_SPAN_METRICS": "no",
            "OTEL_LLM_SPAN_METRICS_SKIP_SCOPES": "x.y",
            "OTEL_LLM_EXPORT_MAX_BATCH_BYTES": "100000",
            "OTEL_LLM_EXPORT_RETRY_MAX_SPANS": "0",
            "OTEL_LLM_EXPORT_RETRY_MAX_AGE_MS": "5000",
            "OTEL_LLM_EXPERIMENT_ID": " exp-1 ",
            "OTEL_LLM_EXPERIMENT_ARMS": "openai:gpt-4o-mini=3,aws.bedrock:nova=1",
            "OTEL_LLM_METRIC_LOG": "stderr",
            "OTEL_LLM_METRIC_LOG_SPANS": "ask_*",
            "OTEL_LLM_LANGCHAIN_MAX_OPEN_RUNS": "10",
            "OTEL_LLM_LANGCHAIN_MAX_ATTRIBUTE_LENGTH": "20",
            "OTEL_LLM_LANGCHAIN_MAX_CONTENT_LENGTH": "30",
        })
        assert loaded == Settings(
            enabled=False, baggage_keys=("a", "b"), baggage_max_value_length=12, baggage_trust_incoming=True,
            rollup="off", rollup_window_ms=0, rollup_max_traces=5, rollup_max_spans_per_trace=7,
            rollup_max_buffered_spans=11,
            rollup_max_age_ms=900, metrics_cardinality_limit=3, span_metrics=False,
            span_metrics_skip_scopes=("x.y",), export_max_batch_bytes=100000, export_retry_max_spans=0,
            export_retry_max_age_ms=5000, experiment_id="exp-1",
            experiment_arms=(Arm("openai", "gpt-4o-mini", 3.0), Arm("aws.bedrock", "nova", 1.0)),
            metric_log="stderr", metric_log_spans=("ask_*",), langchain_max_open_runs=10,
            langchain_max_attribute_length=20, langchain_max_content_length=30,
        )

    @pytest.mark.parametrize(("text", "mode"), [
        ("process", "process"), ("COLLECTOR", "collector"), ("off", "off"), ("true", "process"), ("0", "off"),
    ])
    def test_rollup_mode_accepts_its_names_and_the_earlier_booleans(self, text, mode):
        """OTEL_LLM_ROLLUP takes process|collector|off; true/false keep their earlier meaning."""
        loaded = load_settings({"OTEL_LLM_ROLLUP": text})
        assert loaded.rollup == mode
        assert loaded.rollup_enabled is (mode == "process")

    def test_bad_value_warns_once_and_defaults(self, caplog):
        """A bad variable logs one warning with its name and accepted range, however often it is loaded."""
        environ = {"OTEL_LLM_ROLLUP_WINDOW_MS": "soon"}
        with caplog.at_level(logging.WARNING):
            assert load_settings(environ).rollup_window_ms == 2000
            assert load_settings(environ).rollup_window_ms == 2000
        messages = warnings_for(caplog, "OTEL_LLM_ROLLUP_WINDOW_MS")
        assert len(messages) == 1
        assert "'soon'" in messages[0] and "from 0 to 600000" in messages[0]

    def test_each_bad_variable_gets_its_own_warning(self, caplog):
        """Two bad variables give two warnings, one naming each."""
        with caplog.at_level(logging.WARNING):
            load_settings({"OTEL_LLM_ROLLUP": "maybe", "OTEL_LLM_BAGGAGE_MAX_VALUE_LENGTH": "0"})
        assert len(warnings_for(caplog, "OTEL_LLM_ROLLUP")) == 1
        assert "process, collector, off" in warnings_for(caplog, "OTEL_LLM_ROLLUP")[0]
        assert "from 1 to 4096" in warnings_for(caplog, "OTEL_LLM_BAGGAGE_MAX_VALUE_LENGTH")[0]

    @pytest.mark.parametrize("arms", ["openai=5", "openai:a=0,openai:b=0", "openai:a,openai:a", "openai:a=x"])
    def test_bad_experiment_arms_warn_once_and_mean_no_experiment(self, caplog, arms):
        """OTEL_LLM_EXPERIMENT_ARMS that cannot make an experiment (malformed, all weights 0, repeated arm):
        one warning naming the variable and the accepted form, and no arms."""
        with caplog.at_level(logging.WARNING):
            for _ in range(3):
                assert load_settings({"OTEL_LLM_EXPERIMENT_ARMS": arms}).experiment_arms == ()
        messages = warnings_for(caplog, "OTEL_LLM_EXPERIMENT_ARMS")
        assert len(messages) == 1 and "provider:model[=weight]" in messages[0]

    def test_settings_are_frozen(self):
        """Settings cannot be changed after loading."""
        with pytest.raises(AttributeError):
            load_settings({}).enabled = False  # type: ignore[misc]


class TestOverrides:
    """configure()'s keyword overrides, applied by load_settings with the variables' rules."""

    def test_every_setting_has_a_variable(self):
        """Each Settings field is read from a variable (and so can be overridden); no field is left out."""
        assert list(SETTING_VARIABLES) == [field.name for field in dataclasses.fields(Settings)]

    def test_override_wins_over_the_variable(self):
        """A valid override replaces what the variable says."""
        loaded = load_settings({"OTEL_LLM_ROLLUP_WINDOW_MS": "300"}, {"rollup_window_ms": 100})
        assert loaded.rollup_window_ms == 100

    @pytest.mark.parametrize("field,value,expected", [
        ("enabled", "false", False),
        ("enabled", " Off ", False),
        ("enabled", True, True),
        ("rollup_window_ms", "500", 500),
        ("baggage_keys", "a, b,a", ("a", "b")),
        ("baggage_keys", ["a", "a", " b "], ("a", "b")),
        ("baggage_keys", "none", ()),
        ("baggage_keys", [], ()),
        ("experiment_arms", "openai:gpt-4o", (Arm("openai", "gpt-4o"),)),
        ("experiment_arms", [Arm("openai", "gpt-4o")], (Arm("openai", "gpt-4o"),)),
        ("metric_log_spans", ["a*"], ("a*",)),
    ])
    def test_string_and_native_overrides_are_read_like_the_variable(self, field, value, expected):
        """A string override is read as the variable's text; native values of the right type are taken."""
        assert getattr(load_settings({}, {field: value}), field) == expected

    @pytest.mark.parametrize("field,value,accepts", [
        ("rollup_window_ms", -1, "an integer from 0 to 600000"),
        ("rollup_window_ms", 2.5, "an integer from 0 to 600000"),
        ("rollup_window_ms", 10**400, "an integer from 0 to 600000"),
        ("baggage_max_value_length", True, "an integer from 1 to 4096"),
        ("enabled", "maybe", "true or false"),
        ("enabled", 1, "true or false"),
        ("baggage_keys", ["ok", 3], "comma-separated names"),
        ("baggage_keys", ",,", "comma-separated names"),
        ("experiment_arms", ["openai:gpt-4o"], "provider:model[=weight]"),
        ("langchain_max_open_runs", 0, "an integer >= 1"),
    ])
    def test_bad_override_warns_naming_the_setting_and_is_ignored(self, caplog, field, value, accepts):
        """One warning names the setting, the value and what it accepts; the variable's value is kept."""
        variable, _ = SETTING_VARIABLES[field]
        environ = {variable: "7"} if field == "rollup_window_ms" else {}
        with caplog.at_level(logging.WARNING):
            loaded = load_settings(environ, {field: value})
            load_settings(environ, {field: value})
        assert getattr(loaded, field) == getattr(load_settings(environ), field)
        messages = warnings_for(caplog, f"'{field}'")
        assert len(messages) == 1
        assert repr(value) in messages[0] and accepts in messages[0]

    def test_unknown_override_warns_listing_the_settings_and_is_ignored(self, caplog):
        """An unknown name is named in a warning with the accepted names, and changes nothing."""
        with caplog.at_level(logging.WARNING):
            loaded = load_settings({}, {"rollup_windw_ms": 5, "rollup_max_age_ms": 9000})
        assert loaded == Settings(rollup_max_age_ms=9000)
        message, = warnings_for(caplog, "rollup_windw_ms")
        assert "rollup_window_ms" in message and "span_metrics_skip_scopes" in message


class TestHelpers:
    @pytest.mark.parametrize("raw,expected", [("1", True), ("Yes", True), ("on", True), ("0", False),
                                              ("FALSE", False), ("off", False), ("", True), ("  ", True)])
    def test_bool_words(self, raw, expected):
        """true/false words in any case; empty means unset."""
        assert env_bool("OTEL_LLM_X", True, environ={"OTEL_LLM_X": raw}) is expected

    def test_int_range_and_garbage(self, caplog):
        """Out-of-range and non-integer values give the default."""
        with caplog.at_level(logging.WARNING):
            assert env_int("A", 5, minimum=1, maximum=9, environ={"A": "10"}) == 5
            assert env_int("B", 5, minimum=1, maximum=9, environ={"B": "2.5"}) == 5
            assert env_int("C", 5, minimum=1, environ={"C": " 7 "}) == 7
        assert len(warnings_for(caplog, "for A")) == 1 and len(warnings_for(caplog, "for B")) == 1

    @pytest.mark.parametrize("raw", ["nan", "inf", "-1", "x", "9" * 400])
    def test_float_rejects_non_finite_and_out_of_range(self, raw):
        """NaN, infinities, values too large for a float and values below the minimum give the default."""
        assert env_float("F", 1.5, minimum=0, environ={"F": raw}) == 1.5

    def test_a_huge_integer_is_out_of_range_not_an_error(self):
        """A 400-digit integer is out of range like any other too-large value."""
        assert env_int("I", 5, minimum=1, maximum=9, environ={"I": "9" * 400}) == 5

    def test_float_accepts_decimal(self):
        """A decimal in range is used."""
        assert env_float("F", 1.5, minimum=0, maximum=2, environ={"F": "0.25"}) == 0.25

    def test_csv_strips_dedupes_and_none(self, caplog):
        """Blanks and repeats are dropped; 'none' is an empty list; only commas is a bad value."""
        assert env_csv("L", ("d",), environ={"L": " a, b ,,a "}) == ("a", "b")
        assert env_csv("L", ("d",), environ={"L": "None"}) == ()
        with caplog.at_level(logging.WARNING):
            assert env_csv("M", ("d",), environ={"M": ",,"}) == ("d",)
        assert len(warnings_for(caplog, "for M")) == 1

    def test_choice(self, caplog):
        """A listed choice is used case-insensitively; others warn with the list."""
        assert env_choice("C", "a", ("a", "b"), environ={"C": "B"}) == "b"
        with caplog.at_level(logging.WARNING):
            assert env_choice("D", "a", ("a", "b"), environ={"D": "z"}) == "a"
        assert "one of a, b" in warnings_for(caplog, "for D")[0]

    def test_reads_process_environment_by_default(self, monkeypatch):
        """Without an explicit mapping the helpers read os.environ."""
        monkeypatch.setenv("OTEL_LLM_TEST_ONLY", "42")
        assert env_int("OTEL_LLM_TEST_ONLY", 1) == 42
