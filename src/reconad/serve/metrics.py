"""Prometheus text exposition (format 0.0.4) of the server's counters, without a client library.

Per worker process: with ``--workers N`` each scrape is answered by one worker and
shows that worker's counts (``worker`` label = its process id).
"""

from __future__ import annotations

import bisect
import math
import os
import threading
from collections import defaultdict
from collections.abc import Callable

__all__ = ["Metrics", "LATENCY_BUCKETS", "route_label", "method_label", "status_label"]

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32)
Labels = tuple[tuple[str, str], ...]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _fmt_labels(labels: Labels, extra: tuple[tuple[str, str], ...] = ()) -> str:
    items = labels + extra
    if not items:
        return ""
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in items) + "}"


def _num(v: float) -> str:
    v = float(v)
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return str(int(v)) if v.is_integer() else repr(v)


class _Histogram:
    def __init__(self, buckets: tuple[float, ...]) -> None:
        self.buckets = buckets
        self.counts = [0] * (len(buckets) + 1)
        self.total = 0.0
        self.n = 0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.buckets, value)] += 1
        self.total += value
        self.n += 1


#: HTTP methods counted under their own name; any other (an invented one) is counted as "other"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"})
#: statuses counted under their own code; any other under its class ("2xx" .. "5xx")
STATUSES = frozenset({200, 206, 304, 400, 401, 404, 405, 408, 413, 416, 422, 500, 503})


def method_label(method: str) -> str:
    """A bounded label for a request method: a client may send any token there."""
    return method if method in METHODS else "other"


def status_label(status: int) -> str:
    """A bounded label for a response status."""
    return str(status) if status in STATUSES else f"{min(max(status // 100, 1), 5)}xx"


def route_label(path: str) -> str:
    """A bounded label for a request path (ids and model names folded into placeholders)."""
    parts = path.rstrip("/").split("/") or [""]
    if path.startswith("/v1/models/") and len(parts) >= 5 and parts[4] == "score":
        return "/v1/models/{name}/score"
    if path.startswith("/v1/results/") and len(parts) == 4:
        return "/v1/results/{id}"
    if path.startswith("/static/"):
        return "/static"
    known = ("/", "/healthz", "/readyz", "/metrics", "/v1/models", "/v1/results", "/docs", "/openapi.json")
    return path if path in known else "other"


class Metrics:
    """Counters, gauges and histograms; thread-safe (the batcher threads observe too)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counters: dict[str, dict[Labels, float]] = defaultdict(lambda: defaultdict(float))
        self._hists: dict[str, dict[Labels, _Histogram]] = defaultdict(dict)
        self._gauges: dict[str, Callable[[], dict[Labels, float]]] = {}
        self._help: dict[str, tuple[str, str]] = {}

    def describe(self, name: str, kind: str, text: str) -> None:
        self._help[name] = (kind, text)

    def inc(self, name: str, labels: Labels = (), value: float = 1.0) -> None:
        with self._lock:
            self._counters[name][labels] += value

    def observe(
        self, name: str, value: float, labels: Labels = (), buckets: tuple[float, ...] = LATENCY_BUCKETS
    ) -> None:
        with self._lock:
            hist = self._hists[name].get(labels)
            if hist is None:
                hist = self._hists[name][labels] = _Histogram(buckets)
            hist.observe(value)

    def gauge(self, name: str, read: Callable[[], dict[Labels, float]]) -> None:
        """A gauge read at scrape time."""
        self._gauges[name] = read

    def _head(self, name: str, kind: str) -> list[str]:
        text = self._help.get(name, (kind, name))[1]
        return [f"# HELP {name} {text}", f"# TYPE {name} {kind}"]

    def render(self) -> str:
        worker = (("worker", str(os.getpid())),)
        lines: list[str] = []
        with self._lock:
            for name, series in sorted(self._counters.items()):
                lines += self._head(name, "counter")
                lines += [f"{name}{_fmt_labels(k, worker)} {_num(v)}" for k, v in sorted(series.items())]
            for name, hists in sorted(self._hists.items()):
                lines += self._head(name, "histogram")
                for labels, h in sorted(hists.items()):
                    cumulative = 0
                    for bound, count in zip((*h.buckets, float("inf")), h.counts):
                        cumulative += count
                        le = "+Inf" if bound == float("inf") else _num(bound)
                        lines.append(f"{name}_bucket{_fmt_labels(labels, (*worker, ('le', le)))} {cumulative}")
                    lines.append(f"{name}_sum{_fmt_labels(labels, worker)} {_num(h.total)}")
                    lines.append(f"{name}_count{_fmt_labels(labels, worker)} {h.n}")
        for name, read in sorted(self._gauges.items()):
            lines += self._head(name, "gauge")
            lines += [f"{name}{_fmt_labels(k, worker)} {_num(v)}" for k, v in sorted(read().items())]
        return "\n".join(lines) + "\n"
