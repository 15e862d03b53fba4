"""The secret rules, as data: what the export-side redaction stage and the collector's ``transform/redact``
remove.

Two kinds of rule, each replacing the secret with ``MARKER``:

- ``SECRET_KEY_WORDS``: an attribute whose key is under one of ``KEY_SCOPES`` (LangChain run metadata and the
  environment variables langsmith copies as ``langsmith.metadata.*``, captured HTTP headers) and whose last
  part names a secret (``api_key``, ``OPENAI_API_KEY``, ``x-auth-token``, ``db_password``...) loses its whole
  value, whatever it looks like. ``max_tokens`` or ``tokenizer`` are not secret names: a word counts only
  between non-letters.
- ``VALUE_RULES``: secrets recognised by their shape anywhere in a text value (every string attribute, the
  status description, every event attribute such as ``exception.message`` and ``exception.stacktrace``; the
  SDK side also scans the span name): OpenAI, Anthropic, LangSmith, GitHub and Google keys, AWS access key
  ids, JWTs, bearer tokens, URL user-info, query parameters named like secrets, and ``name=value`` /
  ``"name": "value"`` assignments of a secret name (an AWS secret access key in context). A rule may keep a
  prefix (``Bearer ``, ``?token=``) so the text stays readable.

Every pattern is RE2 syntax (no look-around, no back-references; case-insensitivity as a ``(?i:...)``
group), the same on both sides: ``otel_llm.processors.redact`` compiles it with google-re2,
``transform_config()`` renders it as the collector's OTTL (``python -m otel_llm.ottl --write`` writes it
into collector/config.yaml; tests/unit/test_ottl.py checks the file is current). In the collector a
key-named secret is deleted rather than masked (OTTL cannot rewrite the values of keys it only knows by
pattern).

``OTEL_LLM_REDACT_KEYS`` and ``OTEL_LLM_REDACT_PATTERNS`` add rules on the SDK side (docs/configuration.md).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import NamedTuple

MARKER = "[REDACTED]"
TRANSFORM_PROCESSOR = "transform/redact"

# Attribute key prefixes whose keys are free-form names chosen by users or copied from the environment.
KEY_SCOPES: tuple[str, ...] = ("langsmith.metadata.", "http.request.header.", "http.response.header.")
# Words that make a key under KEY_SCOPES a secret (case-insensitive, between non-letters or at the ends).
SECRET_KEY_WORDS: tuple[str, ...] = (
    "key", "keys", "apikey", "api_key", "token", "secret", "secrets", "password", "passwd", "pwd",
    "authorization", "auth", "credential", "credentials", "cookie", "set-cookie", "signature", "private",
)

# Secret names in "name=value", "name: value" and '"name": "value"' text (also query parameters).
_SECRET_NAME = (
    r"(?i:(?:api[_-]?key|secret[_-]?(?:access[_-]?)?key|client[_-]?secret|secret|password|passwd"
    r"|access[_-]?token|auth[_-]?token|refresh[_-]?token|id[_-]?token|token|signature|credential))"
)


class ValueRule(NamedTuple):
    """A secret shape, replaced by group 1 of ``pattern`` (if ``keep_prefix``), the marker and ``suffix``."""

    name: str
    pattern: str
    keep_prefix: bool = False
    suffix: str = ""

    def replacement(self, prefix: str) -> str:
        """The replacement text, ``prefix`` standing for the kept group (Python's or OTTL's reference)."""
        return (prefix if self.keep_prefix else "") + MARKER + self.suffix


_AWS_KEY_ID_PREFIXES = (
    "AKIA", "ASIA", "ABIA", "ACCA", "AGPA", "AIDA", "AIPA", "ANPA", "ANVA", "AROA", "APKA",
)
_QUERY_WORDS = ("key", "sig", "signature", "code", "auth", "credential")

# Applied in this order (on both sides): shapes first, then the rules that read a name or a scheme before the
# secret, so a rule that keeps a prefix never swallows the context a later rule needs.
VALUE_RULES: tuple[ValueRule, ...] = (
    ValueRule("anthropic_key", r"sk-ant-[A-Za-z0-9_-]{8,}"),
    ValueRule("openai_key", r"\bsk-[A-Za-z0-9_-]{16,}"),
    ValueRule("langsmith_key", r"\blsv2_[A-Za-z0-9_]{16,}"),
    ValueRule("aws_access_key_id", r"\b(?:" + "|".join(_AWS_KEY_ID_PREFIXES) + r")[A-Z0-9]{16}\b"),
    ValueRule("jwt", r"\beyJ[A-Za-z0-9_-]{4,}\.eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*"),
    ValueRule("github_token", r"\bgh[pousr]_[A-Za-z0-9]{30,}"),
    ValueRule("google_api_key", r"\bAIza[0-9A-Za-z_-]{35}"),
    ValueRule("bearer", r"((?i:\bbearer)\s+)[A-Za-z0-9._~+/=-]{8,}", keep_prefix=True),
    ValueRule("url_userinfo", r"(\b[A-Za-z][A-Za-z0-9+.-]*://)[^/?#\s@]+@", keep_prefix=True, suffix="@"),
    # Query parameters whose name ends in a secret word (Google's ?key=, signed URLs' X-Amz-Signature).
    ValueRule("query_parameter",
              r"([?&](?i:(?:[a-z0-9_.-]*[_.-])?(?:" + "|".join(_QUERY_WORDS) + r"))=)[^&#\s]*",
              keep_prefix=True),
    ValueRule("secret_assignment", r"(" + _SECRET_NAME + r"[\"']?\s*[=:]\s*[\"']?)[^\s\"',;&}]+",
              keep_prefix=True),
)


def secret_key_pattern(words: Sequence[str] = SECRET_KEY_WORDS, scopes: Sequence[str] = KEY_SCOPES) -> str:
    """One regex matching an attribute key under ``scopes`` whose name holds one of ``words``."""
    scope = "|".join(re.escape(prefix) for prefix in scopes)
    word = "|".join(re.escape(item) for item in sorted(set(words), key=lambda item: (-len(item), item)))
    return rf"^(?:{scope})(?i:(?:.*[^a-z])?(?:{word})(?:[^a-z].*)?)$"


# --- the collector side (OTTL) --------------------------------------------------------------------------


def _quote(text: str) -> str:
    return json.dumps(text)


def _ottl_replacement(rule: ValueRule) -> str:
    # "$$" is the collector's escape for "$" (its config expands ${...}); OTTL then sees "$1", group 1.
    return _quote(rule.replacement("$$1"))


def transform_config() -> list[dict]:
    """The ``trace_statements`` of ``transform/redact``: span attributes, status message, event attributes."""
    span_statements = [f"delete_matching_keys(span.attributes, {_quote(secret_key_pattern())})"]
    event_statements = []
    for rule in VALUE_RULES:
        pattern, replacement = _quote(rule.pattern), _ottl_replacement(rule)
        span_statements.append(f'replace_all_patterns(span.attributes, "value", {pattern}, {replacement})')
        span_statements.append(f"replace_pattern(span.status.message, {pattern}, {replacement})")
        event_statements.append(
            f'replace_all_patterns(spanevent.attributes, "value", {pattern}, {replacement})')
    return [
        {"context": "span", "statements": span_statements},
        {"context": "spanevent", "statements": event_statements},
    ]
