"""`make generate` rewrites every generated file: its list is every module with a ``--write`` CLI."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _makefile_generators() -> list[str]:
    match = re.search(r"^GENERATORS := (.+)$", (ROOT / "Makefile").read_text(), re.MULTILINE)
    assert match, "Makefile has no GENERATORS list"
    return match.group(1).split()


def _generator_modules() -> set[str]:
    """Modules with otel_llm.generated's ``--write``/``--check`` command line, directly or through ottl's."""
    modules = set()
    for path in (ROOT / "otel_llm").rglob("*.py"):
        source = path.read_text()
        if "generated.main(" in source or "generator_main(argv" in source:
            parts = path.relative_to(ROOT).with_suffix("").parts
            modules.add(".".join(parts[:-1] if parts[-1] == "__main__" else parts))
    return modules


def test_make_generate_runs_every_generator():
    assert set(_makefile_generators()) == _generator_modules()


def test_kubernetes_configmap_is_generated_last():
    """The ConfigMap copies collector/*.yaml, which the OTTL and sampling generators rewrite."""
    generators = _makefile_generators()
    assert generators[-1] == "otel_llm.stack.kubernetes"
    assert generators.index("otel_llm.sampling") < generators.index("otel_llm.stack.kubernetes")
    assert generators.index("otel_llm.ottl") < generators.index("otel_llm.stack.kubernetes")
