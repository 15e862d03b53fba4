"""Helpers for the integration and end-to-end tests: polling, a local OTLP/HTTP receiver, Jaeger/Prometheus queries."""
