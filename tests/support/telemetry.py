"""Read a collector's own metrics (its telemetry port's Prometheus text) without a Prometheus in between."""

from __future__ import annotations

import re

import requests

_SAMPLE = re.compile(r'^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>.*)\})? (?P<value>\S+)$')
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


class Telemetry:
    """One scrape of ``http://host:port/metrics``; ``sum`` adds up the samples of a metric."""

    def __init__(self, port: int, host: str = "127.0.0.1") -> None:
        text = requests.get(f"http://{host}:{port}/metrics", timeout=5).text
        self.samples: list[tuple[str, dict[str, str], float]] = []
        for line in text.splitlines():
            match = _SAMPLE.match(line)
            if match and not line.startswith("#"):
                labels = dict(_LABEL.findall(match["labels"] or ""))
                self.samples.append((match["name"], labels, float(match["value"])))

    def sum(self, name: str, **labels: str) -> float:
        """The sum of ``name``'s samples whose labels include ``labels`` (0 when there is none)."""
        return sum(value for sample, have, value in self.samples
                   if sample == name and all(have.get(key) == wanted for key, wanted in labels.items()))
