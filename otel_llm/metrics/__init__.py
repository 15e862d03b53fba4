"""Metrics: GenAI metric views, token-stream metrics, span-derived LLM metrics."""
