"""The local stack: an ocb-built collector, Jaeger v2, Prometheus and Redis on loopback.

``paths`` says where the configs, the build cache and the binaries are; ``build`` builds or installs the
binaries (``otel-llm stack build``); ``prometheus`` renders the Prometheus config template; ``run`` starts and
stops the processes; ``variables`` holds the prefixes of the stack's and the collector's variables and their
old names. Ports and env vars: docs/stack.md.
"""
