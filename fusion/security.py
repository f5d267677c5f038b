"""CURVE keys, the ZAP allowlist and the binding of keys to the sensor ids they may speak for.

This module owns who may connect and as whom: it writes and reads key pairs in ZeroMQ's
certificate format, runs the ZAP handler that every server socket of the service consults,
and answers "may this connection speak for that sensor?". It does not read messages.

How the binding works: the ZAP handler admits a CURVE client only when its public key is in
the allowlist for the socket's domain (``ingest`` for adapters, ``publish`` and ``query`` for
subscribers) and replies with the allowlist entry's name as the ZAP User-Id. libzmq then
attaches that name to every message the connection delivers, and the ingest reads it with
``frame.get("User-Id")`` before it trusts anything in the frame.

Plain text (NULL mechanism) is possible only on loopback and only when the config asks for it:
then the handler admits connections from loopback addresses only, as the User-Id
``plaintext``, which may speak for any sensor.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import zmq
import zmq.auth

from fusion.config import AllowEntry, ConfigError, FusionConfig

log = logging.getLogger(__name__)

ZAP_ENDPOINT = "inproc://zeromq.zap.01"
DOMAIN_INGEST = "ingest"
DOMAIN_PUBLISH = "publish"
DOMAIN_QUERY = "query"
PLAINTEXT_USER = "plaintext"
_ROLE_DOMAINS = {"adapter": (DOMAIN_INGEST,), "subscriber": (DOMAIN_PUBLISH, DOMAIN_QUERY)}


class KeyFileError(ConfigError):
    """A key file that is missing or unreadable."""


@dataclass(frozen=True)
class KeyPair:
    public: bytes  # Z85, 40 bytes
    secret: bytes | None  # Z85, 40 bytes; None for a public-only certificate


# --------------------------------------------------------------------------- key files


def generate_keys(name: str, directory: str | os.PathLike[str]) -> tuple[Path, Path]:
    """Writes ``<name>.key`` (public) and ``<name>.key_secret`` (secret, mode 0600) in
    ZeroMQ's certificate format; returns their paths. Refuses to overwrite an existing pair."""
    if not name or "/" in name or name.startswith("."):
        raise ValueError(f"bad key name {name!r}")
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    public, secret = d / f"{name}.key", d / f"{name}.key_secret"
    if public.exists() or secret.exists():
        raise FileExistsError(f"{public} or {secret} already exists; remove it first")
    pub_path, sec_path = zmq.auth.create_certificates(str(d), name)
    os.chmod(sec_path, 0o600)
    return Path(pub_path), Path(sec_path)


def load_keypair(path: str | os.PathLike[str]) -> KeyPair:
    """Reads a certificate (``.key`` or ``.key_secret``); the secret is None for ``.key``."""
    p = Path(path)
    if not p.is_file():
        raise KeyFileError(f"key file {p} not found (create it with `fusion keys generate`)")
    try:
        public, secret = zmq.auth.load_certificate(str(p))
    except (ValueError, OSError) as exc:
        raise KeyFileError(f"key file {p} is not a ZeroMQ certificate: {exc}") from None
    if public is None or len(public) != 40:
        raise KeyFileError(f"key file {p} has no valid public-key")
    return KeyPair(public=public, secret=secret)


def load_secret(name_or_path: str | os.PathLike[str], keys_dir: Path) -> KeyPair:
    """The key pair of `name` in keys_dir (or a path to a .key_secret file)."""
    p = Path(name_or_path)
    if p.suffix != ".key_secret":
        p = keys_dir / f"{name_or_path}.key_secret"
    kp = load_keypair(p)
    if kp.secret is None:
        raise KeyFileError(f"{p} holds no secret key")
    return kp


def resolve_public(key: str, keys_dir: Path) -> bytes:
    """`key` is a Z85 public key (40 characters) or the name of a certificate in keys_dir."""
    if len(key) == 40:  # Z85 uses '.', '/' and the like: a 40-character key is never a path
        try:
            if len(zmq.utils.z85.decode(key.encode("ascii"))) == 32:
                return key.encode("ascii")
        except (ValueError, KeyError, UnicodeEncodeError):
            pass
    p = Path(key)
    if p.suffix not in (".key", ".key_secret"):
        p = keys_dir / f"{key}.key"
    return load_keypair(p).public


# --------------------------------------------------------------------------- allowlist


@dataclass
class Allowlist:
    """Public key -> admitted entry, and entry name -> the sensor ids it may speak for."""

    by_key: dict[bytes, AllowEntry] = field(default_factory=dict)
    plaintext: bool = False

    @classmethod
    def from_config(cls, config: FusionConfig) -> Allowlist:
        allow = cls(plaintext=config.security.plaintext_loopback)
        for entry in config.security.allow:
            try:
                key = resolve_public(entry.key, config.security.keys_dir)
            except ConfigError as exc:
                raise ConfigError(f"{config.source}: security.allow {entry.name}: {exc}") from None
            allow.add(entry, key)
        return allow

    def add(self, entry: AllowEntry, public_z85: bytes) -> None:
        if public_z85 in self.by_key:
            raise ConfigError(f"public key of {entry.name} is listed twice")
        self.by_key[public_z85] = entry
        self._sensors = None

    def admit(self, domain: str, public_z85: bytes) -> AllowEntry | None:
        entry = self.by_key.get(public_z85)
        if entry is None or domain not in _ROLE_DOMAINS[entry.role]:
            return None
        return entry

    def may_speak_for(self, user_id: str | None, sensor: str) -> bool:
        """True when the connection admitted as `user_id` may send as `sensor`."""
        if user_id == PLAINTEXT_USER and self.plaintext:
            return True
        allowed = self.sensor_table().get(user_id or "")
        return allowed is not None and ("*" in allowed or sensor in allowed)

    def sensor_table(self) -> dict[str, frozenset[str]]:
        table = getattr(self, "_sensors", None)
        if table is None:
            table = {e.name: frozenset(e.sensors) for e in self.by_key.values()}
            self._sensors = table
        return table


# --------------------------------------------------------------------------- ZAP handler


class ZapHandler:
    """A thread answering ZAP requests on inproc://zeromq.zap.01 for one context.

    Counts refusals by reason in `refused` (read by the metrics collector) and admissions in
    `admitted`. Start it before binding any server socket; stop it after closing them.
    """

    def __init__(self, context: zmq.Context, allowlist: Allowlist) -> None:
        self.context = context
        self.allowlist = allowlist
        self.refused: dict[str, int] = {}
        self.admitted = 0
        self._last_log: dict[str, float] = {}
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="zap", daemon=True)

    def start(self) -> ZapHandler:
        self._thread.start()
        self._ready.wait(5.0)
        if self._error is not None:
            raise self._error
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2.0)

    def __enter__(self) -> ZapHandler:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        sock = self.context.socket(zmq.REP)
        sock.linger = 0
        try:
            sock.bind(ZAP_ENDPOINT)
        except zmq.ZMQError as exc:
            self._error = exc
            self._ready.set()
            sock.close()
            return
        self._ready.set()
        poller = zmq.Poller()
        poller.register(sock, zmq.POLLIN)
        try:
            while not self._stop.is_set():
                if not poller.poll(100):
                    continue
                request = sock.recv_multipart()
                sock.send_multipart(self.answer(request))
        except zmq.ContextTerminated:
            pass
        finally:
            sock.close(0)

    def _refuse(self, reason: str, address: str) -> None:
        self.refused[reason] = self.refused.get(reason, 0) + 1
        # A refused peer reconnects every few hundred ms: log at most once a second per reason.
        now = time.monotonic()
        if now - self._last_log.get(reason, -1e9) >= 1.0:
            self._last_log[reason] = now
            log.warning(
                "refused connection from %s: %s (%d so far)", address, reason, self.refused[reason]
            )

    def answer(self, request: list[bytes]) -> list[bytes]:
        """The ZAP reply (RFC 27) to one request."""
        if len(request) < 6:
            return [b"1.0", b"", b"500", b"malformed ZAP request", b"", b""]
        version, request_id, domain_b, address_b, _identity, mechanism = request[:6]
        credentials = request[6:]
        domain = domain_b.decode("utf-8", "replace")
        address = address_b.decode("utf-8", "replace")

        def reply(code: bytes, text: bytes, user: str = "") -> list[bytes]:
            return [version, request_id, code, text, user.encode(), b""]

        if version != b"1.0":
            return reply(b"500", b"unsupported ZAP version")
        if mechanism == b"CURVE" and len(credentials) == 1 and len(credentials[0]) == 32:
            public = zmq.utils.z85.encode(credentials[0])
            entry = self.allowlist.admit(domain, public)
            if entry is None:
                reason = "unknown_key" if public not in self.allowlist.by_key else "wrong_role"
                self._refuse(reason, address)
                return reply(b"400", b"key not allowed")
            self.admitted += 1
            return reply(b"200", b"OK", entry.name)
        if mechanism == b"NULL":
            if not self.allowlist.plaintext:
                self._refuse("no_key", address)
                return reply(b"400", b"plain text refused")
            if address not in ("127.0.0.1", "::1", "") and not address.startswith("127."):
                self._refuse("not_loopback", address)
                return reply(b"400", b"plain text only on loopback")
            self.admitted += 1
            return reply(b"200", b"OK", PLAINTEXT_USER)
        self._refuse("mechanism", address)
        return reply(b"400", b"mechanism not allowed")


# --------------------------------------------------------------------------- socket set-up


def secure_server(sock: zmq.Socket, server: KeyPair | None, domain: str) -> None:
    """Makes `sock` a CURVE server (or, with `server=None`, a plain-text socket that still
    goes through ZAP) in `domain`. Call before bind."""
    sock.zap_domain = domain.encode()
    if server is None:
        # With a ZAP domain set, libzmq consults the handler even for the NULL mechanism.
        return
    sock.curve_secretkey = server.secret
    sock.curve_publickey = server.public
    sock.curve_server = True


def secure_client(sock: zmq.Socket, client: KeyPair | None, server_public: bytes | None) -> None:
    """Makes `sock` a CURVE client of the server with `server_public` (no-op when None)."""
    if client is None or server_public is None:
        return
    sock.curve_secretkey = client.secret
    sock.curve_publickey = client.public
    sock.curve_serverkey = server_public


def warn_plaintext(config: FusionConfig) -> None:
    if config.security.plaintext_loopback:
        log.warning(
            "PLAIN TEXT: CURVE is off (security.plaintext_loopback = true); only loopback "
            "connections are admitted and any of them may speak for any sensor"
        )
