"""The query socket: late joiners ask for the current state, then follow the live stream.

This is the zguide's clone pattern: a client subscribes to the PUB stream first, then asks
here for the state and the cue history since a sequence number, and merges the two by cue
`seq` (fusion.client does this). The server answers on a ROUTER socket (CURVE, domain
``query``); a client uses a DEALER or REQ socket.

Frame layout: request = one msgpack map; reply = one msgpack map (after the routing frames).

    {"q": "tracks"}               -> {"ok": true, "trk": <bytes: protocol.encode(TrackUpdate)>}
    {"q": "open_cues"}            -> {"ok": true, "cues": [body, ...], "last_seq": int}
    {"q": "since", "seq": int, "limit": int (<= 10000)}
                                  -> {"ok": true, "cues": [...], "last_seq": int, "more": bool}
    {"q": "status"}               -> {"ok": true, "status": <bytes: protocol.encode(Status)>}
    {"q": "report", "missed": int} -> {"ok": true}   (a subscriber reports stream gaps)
    anything else                 -> {"ok": false, "error": "<reason>"}
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

import msgpack

from fusion import protocol

log = logging.getLogger(__name__)

MAX_REQUEST_BYTES = 4096
MAX_SINCE_LIMIT = 10_000


class QueryBackend(Protocol):
    def query_tracks(self) -> Any: ...
    def query_status(self) -> Any: ...
    def query_open_cues(self) -> list[dict[str, Any]]: ...
    def query_since(self, seq: int, limit: int) -> list[dict[str, Any]]: ...
    def last_cue_seq(self) -> int: ...
    def report_drops(self, missed: int) -> None: ...


class QueryHandler:
    def __init__(self, backend: QueryBackend) -> None:
        self.backend = backend
        self.requests: dict[str, int] = {}
        self.errors = 0

    def answer(self, request: bytes) -> bytes:
        try:
            reply = self._answer(request)
        except Exception as exc:  # a query must never take the service down
            log.exception("query failed")
            self.errors += 1
            reply = {"ok": False, "error": f"internal: {type(exc).__name__}"}
        return msgpack.packb(reply, use_bin_type=True)

    def _bad(self, error: str) -> dict[str, Any]:
        self.errors += 1
        return {"ok": False, "error": error}

    def _answer(self, request: bytes) -> dict[str, Any]:
        if len(request) > MAX_REQUEST_BYTES:
            return self._bad("oversized")
        try:
            req = msgpack.unpackb(request, raw=False, strict_map_key=True)
        except Exception:
            return self._bad("decode")
        if not isinstance(req, dict) or not isinstance(req.get("q"), str):
            return self._bad("expected a map with q")
        q = req["q"]
        self.requests[q] = self.requests.get(q, 0) + 1
        b = self.backend
        if q == "tracks":
            return {"ok": True, "trk": protocol.encode(b.query_tracks())}
        if q == "status":
            return {"ok": True, "status": protocol.encode(b.query_status())}
        if q == "open_cues":
            last = b.last_cue_seq()
            return {"ok": True, "cues": b.query_open_cues(), "last_seq": last}
        if q == "since":
            seq, limit = req.get("seq", 0), req.get("limit", 1000)
            if type(seq) is not int or type(limit) is not int or seq < 0 or limit < 1:
                return self._bad("since needs integer seq >= 0 and limit >= 1")
            limit = min(limit, MAX_SINCE_LIMIT)
            cues = b.query_since(seq, limit + 1)
            more = len(cues) > limit
            cues = cues[:limit]
            last = cues[-1]["seq"] if cues else max(seq, 0)
            return {"ok": True, "cues": cues, "last_seq": last, "more": more}
        if q == "report":
            missed = req.get("missed", 0)
            if type(missed) is not int or not 0 <= missed < 2**62:
                return self._bad("report needs integer missed >= 0")
            b.report_drops(missed)
            return {"ok": True}
        return self._bad(f"unknown query {q[:40]!r}")
