"""Python API for subscribers and queries: the live streams with catch-up, and the query socket.

This module owns the client side of the clone pattern (zguide): `FusionClient.subscribe`
connects the SUB socket first, waits until the stream is flowing, then reads the cue history
from the store through the query socket, yields it, and continues with the live stream,
skipping cues it already yielded (by store `seq`) and filling any hole in the cue sequence
from the store. So nothing stored between the service's start and the subscription is missed.

It also counts messages a slow reader lost (the per-topic sequence numbers in the publisher's
header, fusion.service.publisher) and reports them to the service, which counts them as
publish drops.

    client = FusionClient.from_config(load_config("configs/fusion.toml"), key="subscriber")
    for topic, msg in client.subscribe(["cue"]):
        ...
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import msgpack
import zmq

from fusion import protocol
from fusion.config import FusionConfig
from fusion.messages import CueEvent, Status, TrackUpdate
from fusion.security import KeyPair, load_keypair, load_secret, secure_client
from fusion.service import publisher

SYNC_TOPIC = b"status"


class QueryError(RuntimeError):
    """The service answered a query with an error, or did not answer in time."""


@dataclass
class Received:
    topic: str
    message: Any  # TrackUpdate | CueEvent | Status
    pub_seq: int  # per-topic sequence number (0 for history read from the store)
    t_pub_s: float
    from_history: bool = False


class FusionClient:
    def __init__(
        self,
        query_endpoint: str,
        publish_endpoint: str,
        *,
        keys: KeyPair | None = None,
        server_public: bytes | None = None,
        context: zmq.Context | None = None,
        timeout_s: float = 5.0,
    ) -> None:
        self.query_endpoint = query_endpoint
        self.publish_endpoint = publish_endpoint
        self.keys = keys
        self.server_public = server_public
        self.ctx = context or zmq.Context.instance()
        self.timeout_s = timeout_s
        self._req: zmq.Socket | None = None

    @classmethod
    def from_config(
        cls, config: FusionConfig, key: str | None = "subscriber", **kwargs: Any
    ) -> FusionClient:
        """Endpoints from the config; CURVE keys `key` and the server's public key from its
        keys_dir (none when the config runs plain text on loopback)."""
        keys = server = None
        if not config.security.plaintext_loopback:
            kd = config.security.keys_dir
            keys = load_secret(key or "subscriber", kd)
            server = load_keypair(kd / f"{config.security.server_key}.key").public
        return cls(
            _connectable(config.service.query),
            _connectable(config.service.publish),
            keys=keys,
            server_public=server,
            **kwargs,
        )

    # -- queries ------------------------------------------------------------------------------

    def _socket(self) -> zmq.Socket:
        if self._req is None:
            s = self.ctx.socket(zmq.DEALER)
            s.linger = 0
            secure_client(s, self.keys, self.server_public)
            s.connect(self.query_endpoint)
            self._req = s
        return self._req

    def request(self, query: dict[str, Any]) -> dict[str, Any]:
        """One query; raises QueryError on an error reply or a timeout (after which the socket
        is replaced, so a late reply cannot be taken for the next one: the lazy pirate)."""
        s = self._socket()
        s.send(msgpack.packb(query, use_bin_type=True))
        if not s.poll(int(self.timeout_s * 1000)):
            s.close(0)
            self._req = None
            raise QueryError(f"no reply to {query.get('q')!r} within {self.timeout_s} s")
        reply = msgpack.unpackb(s.recv(), raw=False)
        if not isinstance(reply, dict) or not reply.get("ok"):
            raise QueryError(f"query {query.get('q')!r} failed: {reply.get('error')}")
        return reply

    def tracks(self) -> TrackUpdate:
        return protocol.decode(self.request({"q": "tracks"})["trk"])

    def status(self) -> Status:
        return protocol.decode(self.request({"q": "status"})["status"])

    def open_cues(self) -> list[dict[str, Any]]:
        return self.request({"q": "open_cues"})["cues"]

    def history(self, since_seq: int = 0, page: int = 1000) -> list[dict[str, Any]]:
        """Every stored cue event with seq > since_seq, oldest first."""
        out: list[dict[str, Any]] = []
        seq = since_seq
        while True:
            reply = self.request({"q": "since", "seq": seq, "limit": page})
            out.extend(reply["cues"])
            seq = reply["last_seq"]
            if not reply["more"]:
                return out

    def report_drops(self, missed: int) -> None:
        self.request({"q": "report", "missed": int(missed)})

    def close(self) -> None:
        if self._req is not None:
            self._req.close(0)
            self._req = None

    def __enter__(self) -> FusionClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- streams ------------------------------------------------------------------------------

    def subscribe(
        self,
        topics: Sequence[str] = ("cue", "trk", "status"),
        *,
        since_seq: int = 0,
        catch_up: bool = True,
        rcvhwm: int = 10_000,
    ) -> Subscription:
        return Subscription(self, topics, since_seq=since_seq, catch_up=catch_up, rcvhwm=rcvhwm)


class Subscription:
    """An iterator of `Received`: history first (when catching up), then live messages.

    `missed` counts live messages lost to the high-water mark (gaps in per-topic sequence
    numbers); they are reported to the service every `report_interval_s`.
    """

    def __init__(
        self,
        client: FusionClient,
        topics: Sequence[str],
        *,
        since_seq: int = 0,
        catch_up: bool = True,
        rcvhwm: int = 10_000,
        sync_timeout_s: float = 3.0,
        report_interval_s: float = 1.0,
    ) -> None:
        self.client = client
        self.prefixes = tuple(str(t) for t in topics)
        self.last_cue_seq = since_seq
        self.missed = 0
        self.missed_by_topic: dict[str, int] = {}
        self.unfilled_gaps = 0  # cue holes the store could not fill (query timed out)
        self._baseline = catch_up or since_seq > 0
        self._reported = 0
        self._report_interval_s = report_interval_s
        self._next_report = time.monotonic() + report_interval_s
        self._topic_seq: dict[str, int] = {}
        self._pending: deque[Received] = deque()
        s = client.ctx.socket(zmq.SUB)
        s.linger = 0
        s.rcvhwm = rcvhwm
        secure_client(s, client.keys, client.server_public)
        for p in self.prefixes:
            s.setsockopt(zmq.SUBSCRIBE, p.encode())
        self._sync_only = not any(SYNC_TOPIC.decode().startswith(p) for p in self.prefixes)
        if self._sync_only:
            s.setsockopt(zmq.SUBSCRIBE, SYNC_TOPIC)
        s.connect(client.publish_endpoint)
        self.sock = s
        if catch_up:
            self._sync(sync_timeout_s)
            self._catch_up()

    def _sync(self, timeout_s: float) -> None:
        """Waits for the first live message, so the subscription is in effect before the
        history is read (a cue stored after the history query is then surely received)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.sock.poll(50):
                got = self._read_one()
                if got is not None:
                    self._pending.append(got)
                return

    def _wants(self, topic: str) -> bool:
        return topic.startswith(self.prefixes)

    def _catch_up(self) -> None:
        history = []
        for body in self.client.history(self.last_cue_seq):
            topic = publisher.cue_topic(body)
            if self._wants(topic):
                history.append(Received(topic, CueEvent(body), 0, 0.0, from_history=True))
            self.last_cue_seq = max(self.last_cue_seq, int(body["seq"]))
        # Live messages read before the history stay queued behind it; `_accept` drops the
        # cues among them that the history already holds.
        self._pending = deque(history + list(self._pending))

    def _read_one(self) -> Received | None:
        frames = self.sock.recv_multipart()
        try:
            topic, seq, t_pub, body = publisher.parse(frames)
            msg = protocol.decode(body)
        except (ValueError, protocol.ProtocolError):
            return None
        last = self._topic_seq.get(topic)
        if last is not None and seq > last + 1:
            gap = seq - last - 1
            self.missed += gap
            self.missed_by_topic[topic] = self.missed_by_topic.get(topic, 0) + gap
        self._topic_seq[topic] = seq
        return Received(topic, msg, seq, t_pub)

    def _maybe_report(self, force: bool = False) -> None:
        if self.missed > self._reported and (force or time.monotonic() >= self._next_report):
            self._next_report = time.monotonic() + self._report_interval_s
            try:
                self.client.report_drops(self.missed - self._reported)
                self._reported = self.missed
            except QueryError:
                pass

    def next(self, timeout_s: float | None = None) -> Received | None:
        """The next message, or None after `timeout_s` without one."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            while self._pending:
                r = self._pending.popleft()
                if r.from_history or self._accept(r):
                    return r
            self._maybe_report()
            wait_ms = 200 if deadline is None else max(0, int((deadline - time.monotonic()) * 1000))
            if self.sock.poll(min(wait_ms, 200)):
                r = self._read_one()
                if r is not None and self._accept(r):
                    return r
            elif deadline is not None and time.monotonic() >= deadline:
                return None

    def _accept(self, r: Received) -> bool:
        if self._sync_only and r.topic == SYNC_TOPIC.decode():
            return False
        if isinstance(r.message, CueEvent):
            seq = int(r.message.body.get("seq", 0))
            if not self._baseline:
                # Live only: the first cue received is where this subscriber's stream starts.
                self._baseline = True
                self.last_cue_seq = seq
                return True
            if seq <= self.last_cue_seq:
                return False  # already yielded from the history
            if seq > self.last_cue_seq + 1:
                # A hole (dropped at the HWM, or published before we subscribed): fill it from
                # the store in order, then this one. If the store does not answer, go on live.
                try:
                    self._catch_up()
                except QueryError:
                    self.unfilled_gaps += 1
                if seq <= self.last_cue_seq:
                    return False
            self.last_cue_seq = seq
        return True

    def __iter__(self) -> Iterator[Received]:
        while True:
            r = self.next()
            if r is not None:
                yield r

    def close(self) -> None:
        self._maybe_report(force=True)
        self.sock.close(0)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _connectable(endpoint: str) -> str:
    """A bind endpoint turned into one a client can connect to (0.0.0.0 -> 127.0.0.1)."""
    return endpoint.replace("://0.0.0.0:", "://127.0.0.1:").replace("://*:", "://127.0.0.1:")
