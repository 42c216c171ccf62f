"""Reading /metrics the way Prometheus does: parsed samples, compared as numbers."""

from __future__ import annotations

from collections import Counter
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    samples: Samples = {}
    seen: Counter[tuple[str, frozenset[tuple[str, str]]]] = Counter()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            key = (sample.name, frozenset(sample.labels.items()))
            seen[key] += 1
            samples[key] = sample.value
    duplicates = [key for key, count in seen.items() if count > 1]
    assert not duplicates, f"series appear twice in one scrape: {duplicates}"
    return samples


def scrape(http: httpx.Client, **headers: str) -> Samples:
    r = http.get("/metrics", headers=headers)
    assert r.status_code == 200, r.text
    return parse(r.text)


def value(samples: Samples, name: str, **labels: Any) -> float:
    """The value of the one series named ``name`` whose labels include ``labels``."""
    wanted = {(k, str(v)) for k, v in labels.items()}
    found = [v for (n, lbls), v in samples.items() if n == name and wanted <= lbls]
    assert len(found) == 1, f"{name}{labels}: {len(found)} series match"
    return found[0]


def total(samples: Samples, name: str, **labels: Any) -> float:
    """The sum over every series named ``name`` whose labels include ``labels``."""
    wanted = {(k, str(v)) for k, v in labels.items()}
    return sum(v for (n, lbls), v in samples.items() if n == name and wanted <= lbls)
