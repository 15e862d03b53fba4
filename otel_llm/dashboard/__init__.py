"""The Grafana dashboard of otel-llm, generated from code: ``grafana/otel-llm-dashboard.json``.

``queries`` holds the PromQL (variables, per provider/model/arm requests, alert rules as panels), ``panels``
what each section shows, ``build`` the Grafana JSON through grafana-foundation-sdk (``pip install
'otel-llm[dashboard]'``; a tool, never imported by an instrumented service). ``python -m otel_llm.dashboard``
prints the JSON, ``--write`` rewrites the committed file, ``--check`` exits 1 when it is stale
(tests/unit/test_dashboard_generator.py asserts it is current). docs/dashboard.md says which panel answers
which question.

Cost: none in an instrumented process (never imported there); in Grafana, one PromQL query per panel target
(38) every refresh (30 s), each over a 5-minute window.
"""
