"""OpenTelemetry instrumentations shipped with otel-llm.

``langchain``: live LangChain/LangGraph spans (graph, node, LLM, tool, retriever runs) from a callback
handler, registered for every run by ``LangChainInstrumentor`` (entry point ``otel_llm_langchain`` in the
``opentelemetry_instrumentor`` group, so ``opentelemetry-instrument`` loads it). ``langsmith_bridge``: what
the instrumentor changes in langsmith[otel] so no LangChain run is traced twice. See docs/langgraph.md.
"""
