"""Prometheus metrics of the fusion service, read from its live state at scrape time.

This module owns the metric names and their meaning. Nothing here is incremented in the hot
path: the service keeps plain counters (dicts and ints) that its loop updates anyway, and the
collector turns them into metric families when Prometheus scrapes. Labels are bounded (sensor,
kind, reason, rule, state), never a track id. The registry is injectable, so tests use their
own `CollectorRegistry()`.

Histograms (processing time per batch, detection-to-cue latency) are `Histogram` below: fixed
buckets in a numpy array, observed once per batch or per cue, exported as a histogram family.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)

PROCESSING_BUCKETS_S = (0.0001, 0.0003, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0)
LATENCY_BUCKETS_S = (0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)
SENSOR_STATE_CODES = {"alive": 0, "late": 1, "lost": 2}


class Histogram:
    """Cumulative-bucket histogram with a bounded reservoir of recent values for percentiles."""

    def __init__(self, buckets: tuple[float, ...], reservoir: int = 8192) -> None:
        self.bounds = np.asarray(buckets, float)
        self.counts = np.zeros(len(buckets) + 1, np.int64)  # last bucket: +Inf
        self.sum = 0.0
        self.count = 0
        self._recent = np.zeros(reservoir)
        self._n = 0
        self._lock = threading.Lock()

    def observe(self, value: float) -> None:
        i = int(np.searchsorted(self.bounds, value, side="left"))
        with self._lock:
            self.counts[i] += 1
            self.sum += value
            self.count += 1
            self._recent[self._n % self._recent.shape[0]] = value
            self._n += 1

    def observe_many(self, values: np.ndarray) -> None:
        values = np.asarray(values, float).ravel()
        if values.size == 0:
            return
        idx = np.searchsorted(self.bounds, values, side="left")
        with self._lock:
            self.counts += np.bincount(idx, minlength=self.counts.shape[0])
            self.sum += float(values.sum())
            self.count += int(values.size)
            cap = self._recent.shape[0]
            for v in values[-cap:]:
                self._recent[self._n % cap] = v
                self._n += 1

    def quantile(self, q: float) -> float:
        with self._lock:
            n = min(self._n, self._recent.shape[0])
            if n == 0:
                return float("nan")
            return float(np.quantile(self._recent[:n], q))

    def family(self, name: str, doc: str) -> HistogramMetricFamily:
        with self._lock:
            cum = np.cumsum(self.counts)
            total = self.sum
        buckets = [(repr(float(b)), int(c)) for b, c in zip(self.bounds, cum[:-1], strict=True)]
        buckets.append(("+Inf", int(cum[-1])))
        return HistogramMetricFamily(name, doc, buckets=buckets, sum_value=total)


def _counter(name: str, doc: str, labels: list[str], items: Any) -> CounterMetricFamily:
    c = CounterMetricFamily(name, doc, labels=labels)
    for key, value in items:
        c.add_metric(list(key) if isinstance(key, tuple) else [key], value)
    return c


def _gauge(name: str, doc: str, labels: list[str], items: Any) -> GaugeMetricFamily:
    g = GaugeMetricFamily(name, doc, labels=labels)
    for key, value in items:
        g.add_metric(list(key) if isinstance(key, tuple) else [key], value)
    return g


class ServiceCollector:
    """Reads a running FusionService (fusion.service.server) at scrape time."""

    def __init__(self, service: Any) -> None:
        self.s = service

    def collect(self) -> Iterator:
        s = self.s
        ing = s.ingest
        yield _counter(
            "fusion_detections_total",
            "detections accepted by sensor and kind",
            ["sensor", "kind"],
            sorted(ing.detections.copy().items()),
        )
        yield _counter("fusion_batches_total", "batches accepted", [], [((), ing.batches)])
        yield _counter(
            "fusion_rejects_total",
            "frames rejected at ingest by reason",
            ["reason"],
            sorted(ing.rejects.copy().items()),
        )
        yield _counter(
            "fusion_sensor_binding_rejects_total",
            "frames from an admitted key claiming a sensor it is not bound to",
            ["key", "sensor"],
            sorted(ing.binding_rejects.copy().items()),
        )
        yield _counter(
            "fusion_duplicates_total", "batches dropped as duplicates", [], [((), ing.duplicates)]
        )
        yield _counter("fusion_heartbeats_total", "heartbeats accepted", [], [((), ing.heartbeats)])
        zap = s.zap
        if zap is not None:
            yield _counter(
                "fusion_auth_refused_total",
                "connections refused by the ZAP handler by reason",
                ["reason"],
                sorted(zap.refused.copy().items()),
            )
            yield _counter(
                "fusion_auth_admitted_total", "connections admitted", [], [((), zap.admitted)]
            )
        yield _counter(
            "fusion_handshakes_total",
            "CURVE/NULL handshakes by socket and outcome (a keyless peer fails here)",
            ["socket", "outcome"],
            sorted(s.handshakes.copy().items()),
        )
        rb = s.reorder
        yield _counter(
            "fusion_late_batches_total", "batches later than the reorder lag", [], [((), rb.late)]
        )
        yield _counter(
            "fusion_late_dropped_total",
            "late batches dropped by the late policy",
            [],
            [((), rb.late_dropped)],
        )
        yield _gauge(
            "fusion_reorder_depth", "batches held in the reorder buffer", [], [((), rb.depth)]
        )
        view = s.view  # refreshed by the service loop; never the tracker's live arrays
        yield _gauge("fusion_tracks", "tracks by state", ["state"], sorted(view.tracks.items()))
        yield _counter(
            "fusion_cue_events_total",
            "cue events stored and published by rule and state",
            ["rule", "state"],
            sorted(s.cue_events.copy().items()),
        )
        yield _gauge(
            "fusion_open_cues", "open cues by rule", ["rule"], sorted(s.open_cues_by_rule().items())
        )
        yield s.batch_seconds.family(
            "fusion_batch_processing_seconds", "tracker and rules time per released batch"
        )
        yield s.cue_latency.family(
            "fusion_detection_to_cue_seconds",
            "from receipt of the newest batch behind a cue to the cue's publication",
        )
        pub = s.publisher
        yield _counter(
            "fusion_published_total",
            "messages published by family",
            ["family"],
            sorted(pub.sent.copy().items()),
        )
        yield _counter(
            "fusion_publish_drops_total",
            "published messages dropped: local send failures and gaps reported by subscribers",
            ["source"],
            [("local", sum(pub.local_drops.copy().values())), ("reported", pub.reported_drops)],
        )
        states = view.sensors
        yield _gauge(
            "fusion_sensor_liveness",
            "sensor liveness: 0 alive, 1 late, 2 lost",
            ["sensor"],
            [(k, SENSOR_STATE_CODES[v]) for k, v in sorted(states.items())],
        )
        counts = dict.fromkeys(SENSOR_STATE_CODES, 0)
        for v in states.values():
            counts[v] += 1
        yield _gauge("fusion_sensors", "sensors by liveness state", ["state"], counts.items())
        yield _counter(
            "fusion_snapshots_total", "track snapshots written", [], [((), s.snapshots_written)]
        )
        yield _gauge(
            "fusion_snapshot_seconds",
            "time to write the last snapshot",
            [],
            [((), s.last_snapshot_s)],
        )


def register_service(service: Any, registry: CollectorRegistry | None = None) -> CollectorRegistry:
    registry = registry if registry is not None else CollectorRegistry()
    registry.register(ServiceCollector(service))
    return registry


def serve_metrics(registry: CollectorRegistry, host: str, port: int) -> Any:
    """Starts the HTTP endpoint in a daemon thread; returns the server (call .shutdown())."""
    server, _thread = start_http_server(port, addr=host, registry=registry)
    return server
