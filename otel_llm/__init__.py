"""otel-llm: OpenTelemetry plugins that make LLM applications observable end to end.

``otel_llm.configure()`` sets everything up for an app that does not run under ``opentelemetry-instrument``;
under the launcher the distro and configurator entry points do it from environment variables.
"""

from importlib.metadata import PackageNotFoundError, version

from otel_llm.environment import check_standard_variables

# Before anything imports the SDK: some malformed OTEL_* variables make its imports raise.
check_standard_variables()

from otel_llm.configure import configure  # noqa: E402

try:
    __version__ = version("otel-llm")
except PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__", "configure"]
