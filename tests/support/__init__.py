"""Helpers for integration and end-to-end tests: polling, a local OTLP/HTTP receiver, Jaeger and
Prometheus queries.
"""
