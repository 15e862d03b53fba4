"""``otel-llm load``: the Eco2 agent's load scenario and its SLO verdicts.

``profile`` holds the scenario's stages, intents and messages; ``scenario`` runs them on Locust; ``slo``
counts the run's observations in Prometheus against ``slos.yaml`` (the targets the alert rules share);
``report`` prints them as a table, JSON or PNG. A tool, never imported by an instrumented service.
"""
