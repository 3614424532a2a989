"""ZeroMQ PUB sender: protocol messages under a per-subject topic, latest-only, never blocking.

Each message is two parts, ``[zmq_topic(subject), payload]``. The socket keeps at most
``sndhwm`` messages queued per subscriber; beyond that ZeroMQ drops, so a subscriber that stalls
(an editor at a breakpoint) costs the sender nothing and catches up on the newest frames. PUB
drops silently per subscriber: receivers see those losses as sequence gaps (``n_missing``).
With ``nodrop=True`` (ZMQ_XPUB_NODROP) a full queue instead fails the send, which is then counted
in ``stats.n_dropped``; use it only with a single subscriber, since one stalled subscriber then
stalls that topic for all of them.

Security: a socket bound to anything but the loopback (``tcp://*:5555``, a LAN address) must be
authenticated. ``CurveKeys`` names the server's certificate (``emoface keys`` writes one) and a
folder of the public keys of the clients allowed in; ZeroMQ's CURVE then encrypts the traffic and
a ZAP handler (``zmq.auth``) refuses any other client. Loopback, ``ipc://`` and ``inproc://``
stay open to local processes, as before.
"""

from __future__ import annotations

import ipaddress
import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bridge.errors import TransportError
from bridge.protocol import (
    Frame,
    FrameEncoder,
    Schema,
    StreamEnd,
    StreamStart,
    encode_end,
    encode_schema,
    encode_start,
    zmq_topic,
)
from bridge.transports.base import Sender

log = logging.getLogger(__name__)

DEFAULT_ZMQ_ENDPOINT = "tcp://127.0.0.1:5555"
# Per-subscriber queue, in messages. Small, so a slow reader gets recent frames, not old ones,
# yet enough that a reader draining once per editor tick (~16 ms) loses nothing for a few NPCs.
# (CONFLATE would keep one message per socket, which loses schemas and other subjects' frames.)
DEFAULT_SNDHWM = 16
ZMQ_SCHEMES = ("tcp://", "ipc://", "inproc://")


def check_endpoint(endpoint: str) -> str:
    """Return ``endpoint`` if it names a ZeroMQ transport this bridge supports.

    Raises:
        ValueError: not ``tcp://``, ``ipc://`` or ``inproc://``.
    """
    if not endpoint.startswith(ZMQ_SCHEMES):
        raise ValueError(
            f"ZeroMQ endpoint must start with {', '.join(ZMQ_SCHEMES)}, "
            f"but {endpoint!r} is provided"
        )
    return endpoint


_LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1", "[::1]")
_authenticators: dict[int, Any] = {}  # one ZAP handler per context
_auth_lock = threading.Lock()


def is_local_endpoint(endpoint: str) -> bool:
    """Whether only this machine can reach ``endpoint`` (loopback TCP, ipc://, inproc://)."""
    if not endpoint.startswith("tcp://"):
        return True
    host = endpoint[len("tcp://") :].rsplit(":", 1)[0].strip("[]")
    if host in _LOCAL_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # "*", an interface name or a host name


@dataclass(frozen=True)
class CurveKeys:
    """CURVE authentication for a bound socket.

    Attributes:
        secret_key: the server's certificate with its secret key (``NAME.key_secret``, written
            by ``emoface keys``); clients pin its public half (``NAME.key``).
        authorized_keys: a folder of the public certificates (``*.key``) of the clients that
            may connect; every other client is refused.
    """

    secret_key: str
    authorized_keys: str

    def load(self) -> tuple[bytes, bytes]:
        """``(public, secret)`` of the server certificate.

        Raises:
            TransportError: a file is missing or not a ZeroMQ certificate.
        """
        import zmq.auth

        if not Path(self.authorized_keys).is_dir():
            raise TransportError(f"{self.authorized_keys}: no such folder of client public keys")
        try:
            public, secret = zmq.auth.load_certificate(self.secret_key)
        except (OSError, ValueError) as e:
            raise TransportError(f"{self.secret_key}: not a ZeroMQ certificate ({e})") from e
        if secret is None:
            raise TransportError(f"{self.secret_key}: holds no secret key (use NAME.key_secret)")
        return public, secret


def check_exposure(endpoint: str, keys: CurveKeys | None) -> None:
    """Refuse to bind beyond this machine without authentication.

    Raises:
        TransportError: ``endpoint`` is reachable from other machines and ``keys`` is None.
    """
    if keys is None and not is_local_endpoint(endpoint):
        raise TransportError(
            f"{endpoint} accepts connections from other machines; that needs authentication: "
            "pass --secret-key SERVER.key_secret --authorized-keys DIR (see docs/security.md), "
            "or bind 127.0.0.1"
        )


def secure_server_socket(sock: Any, context: Any, keys: CurveKeys) -> None:
    """Make ``sock`` a CURVE server that admits only the authorized client keys."""
    import zmq
    from zmq.auth.thread import ThreadAuthenticator

    public, secret = keys.load()
    with _auth_lock:
        auth = _authenticators.get(id(context))
        if auth is None:
            auth = _authenticators[id(context)] = ThreadAuthenticator(context)
            auth.start()
        auth.configure_curve(domain="*", location=str(keys.authorized_keys))
    sock.setsockopt(zmq.CURVE_SERVER, 1)
    sock.setsockopt(zmq.CURVE_PUBLICKEY, public)
    sock.setsockopt(zmq.CURVE_SECRETKEY, secret)


def secure_client_socket(sock: Any, server_key: str, client_key: str) -> None:
    """Make ``sock`` a CURVE client of the server whose public certificate is ``server_key``.

    Args:
        sock: the unconnected socket.
        server_key: the server's public certificate (``NAME.key``).
        client_key: this client's certificate with its secret key (``NAME.key_secret``).

    Raises:
        TransportError: a file is missing or not a certificate.
    """
    import zmq
    import zmq.auth

    try:
        server_public, _ = zmq.auth.load_certificate(server_key)
        public, secret = zmq.auth.load_certificate(client_key)
    except (OSError, ValueError) as e:
        raise TransportError(f"cannot read CURVE certificates: {e}") from e
    if secret is None:
        raise TransportError(f"{client_key}: holds no secret key (use NAME.key_secret)")
    sock.setsockopt(zmq.CURVE_SERVERKEY, server_public)
    sock.setsockopt(zmq.CURVE_PUBLICKEY, public)
    sock.setsockopt(zmq.CURVE_SECRETKEY, secret)


class ZmqSender(Sender):
    """Publishes every subject's messages on one bound PUB socket.

    Args:
        endpoint: where to bind, e.g. ``tcp://127.0.0.1:5555``; ``tcp://127.0.0.1:*`` picks a
            free port (read it back from ``address``).
        sndhwm: per-subscriber queue limit in messages.
        nodrop: make full queues visible as drops (see the module docstring).
        context: a ``zmq.Context`` (needed for ``inproc://``); default the process-wide one.
        curve: authentication, required when ``endpoint`` is reachable from other machines.
    """

    kind = "zmq"

    def __init__(
        self,
        endpoint: str = DEFAULT_ZMQ_ENDPOINT,
        *,
        sndhwm: int = DEFAULT_SNDHWM,
        nodrop: bool = False,
        context: Any = None,
        curve: CurveKeys | None = None,
    ) -> None:
        super().__init__()
        if sndhwm < 1:
            raise ValueError(f"sndhwm must be at least 1, but {sndhwm} is provided")
        self.endpoint = check_endpoint(endpoint)
        self.sndhwm = sndhwm
        self.nodrop = nodrop
        self._context = context
        self.curve = curve
        self._socket: Any = None
        self._zmq: Any = None
        self._more_flags = self._last_flags = 0
        self._encoders: dict[str, FrameEncoder] = {}
        self._topics: dict[str, bytes] = {}

    @property
    def address(self) -> str:
        """The bound endpoint (with the real port once open)."""
        return self.endpoint

    def _open(self) -> None:
        import zmq  # imported here so the rest of the bridge works without pyzmq

        check_exposure(self.endpoint, self.curve)
        self._zmq = zmq
        context = self._context or zmq.Context.instance()
        sock = context.socket(zmq.PUB)
        if self.curve is not None:
            try:
                secure_server_socket(sock, context, self.curve)
            except BaseException:
                sock.close(0)
                raise
        sock.setsockopt(zmq.SNDHWM, self.sndhwm)
        sock.setsockopt(zmq.LINGER, 0)  # never hang on close waiting for a dead subscriber
        if self.nodrop:
            sock.setsockopt(zmq.XPUB_NODROP, 1)
        try:
            sock.bind(self.endpoint)
        except zmq.ZMQError as e:
            sock.close(0)
            raise TransportError(f"cannot bind ZeroMQ PUB to {self.endpoint}: {e}") from e
        self.endpoint = sock.getsockopt_string(zmq.LAST_ENDPOINT) or self.endpoint
        self._more_flags = zmq.NOBLOCK | zmq.SNDMORE
        self._last_flags = zmq.NOBLOCK
        self._socket = sock

    def _close(self) -> None:
        if self._socket is not None:
            self._socket.close(0)
            self._socket = None

    def _publish(self, subject: str, payload: bytes) -> int | None:
        topic = self._topics.get(subject)
        if topic is None:
            topic = self._topics[subject] = zmq_topic(subject)
        socket = self._socket
        try:
            # Two send calls are a third cheaper than send_multipart. The parts of one message
            # are atomic: once the topic is accepted, the payload is too.
            socket.send(topic, self._more_flags)
            socket.send(payload, self._last_flags)
        except self._zmq.Again:
            return None
        except self._zmq.ZMQError as e:
            raise OSError(e.errno, str(e)) from e
        return len(topic) + len(payload)

    def _send_schema(self, schema: Schema) -> int | None:
        self._encoders[schema.subject] = FrameEncoder(schema.subject, schema.schema_id, schema.fps)
        return self._publish(schema.subject, encode_schema(schema))

    def _send_start(self, start: StreamStart) -> int | None:
        return self._publish(start.subject, encode_start(start))

    def _send_end(self, end: StreamEnd) -> int | None:
        return self._publish(end.subject, encode_end(end))

    def _send_frame(self, frame: Frame) -> int | None:
        encoder = self._encoders.get(frame.subject)
        if encoder is None or encoder.schema_id != frame.schema_id or encoder.fps != frame.fps:
            encoder = self._encoders[frame.subject] = FrameEncoder(
                frame.subject, frame.schema_id, frame.fps
            )
        values = frame.values
        if isinstance(values, np.ndarray):
            # Fast path: one buffer copy instead of packing 174 Python floats; same bytes.
            payload = encoder.encode_packed(
                frame.seq,
                frame.t_s,
                values.astype("<f4", copy=False).tobytes(),
                line_id=frame.line_id,
                t_capture=frame.t_capture,
            )
        else:
            payload = encoder.encode(
                frame.seq, frame.t_s, values, line_id=frame.line_id, t_capture=frame.t_capture
            )
        return self._publish(frame.subject, payload)
