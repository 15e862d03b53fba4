"""The per-arm A/B report behind ``otel-llm ab``: samples from Jaeger and Prometheus, statistics, output.

``sources`` reads the stack's HTTP APIs, ``stats`` calls SciPy and statsmodels (percentiles, Mann-Whitney U,
bootstrap intervals, Holm), ``report`` builds and renders the per-arm comparison, ``chart`` draws the PNG.
"""
