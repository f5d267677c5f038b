"""Prometheus metrics of a sensor link, read from its live counters at scrape time.

This module owns the metric names and help texts of the adapter side; it reads the link's
`stats`, buffer and queue and must not change them. No label per track or per message: one
series per sensor (and per input outcome for the decoder's counts).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

if TYPE_CHECKING:
    from sensors.base import Link


class LinkCollector:
    """Prometheus metrics read from the link's live counters at scrape time."""

    def __init__(self, link: Link) -> None:
        self._link = link

    def collect(self) -> Iterator:
        link = self._link
        sensor = link.config.sensor
        s = dict(link.stats)
        counters = (
            ("sensors_measurements_total", "measurements read from the sensor", "measurements_in"),
            ("sensors_batches_total", "detection batches made", "batches_out"),
            ("sensors_detections_total", "detections batched", "detections_out"),
            ("sensors_frames_sent_total", "batch frames sent, resends included", "frames_sent"),
            ("sensors_acked_batches_total", "batches acknowledged by fusion", "acked_batches"),
            ("sensors_dropped_batches_total", "batches dropped: buffer full", "dropped_batches"),
            (
                "sensors_dropped_detections_total",
                "detections in dropped batches",
                "dropped_detections",
            ),
            ("sensors_queue_full_total", "measurements dropped: input queue full", "queue_full"),
            ("sensors_reconnects_total", "sockets reopened after an ack timeout", "reconnects"),
            ("sensors_heartbeats_total", "heartbeats sent", "heartbeats"),
            ("sensors_bad_replies_total", "undecodable frames from fusion", "bad_replies"),
        )
        for name, doc, key in counters:
            c = CounterMetricFamily(name, doc, labels=["sensor"])
            c.add_metric([sensor], s[key])
            yield c
        g = GaugeMetricFamily("sensors_unacked_batches", "batches awaiting ack", labels=["sensor"])
        g.add_metric([sensor], len(link._pending))
        yield g
        g = GaugeMetricFamily("sensors_queue_depth", "measurements queued", labels=["sensor"])
        g.add_metric([sensor], link._in.qsize())
        yield g
        if link._source_stats is not None:
            c = CounterMetricFamily(
                "sensors_input_total", "input units by outcome", labels=["sensor", "outcome"]
            )
            for outcome, n in sorted(link._source_stats().items()):
                c.add_metric([sensor, outcome], n)
            yield c
