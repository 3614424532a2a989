"""ZeroMQ PUB sender: protocol messages under a per-subject topic, latest-only, never blocking.

Each message is two parts, ``[zmq_topic(subject), payload]``. The socket keeps at most
``sndhwm`` messages queued per subscriber; beyond that ZeroMQ drops, so a subscriber that stalls
(an editor at a breakpoint) costs the sender nothing and catches up on the newest frames. PUB
drops silently per subscriber: receivers see those losses as sequence gaps (``n_missing``).
With ``nodrop=True`` (ZMQ_XPUB_NODROP) a full queue instead fails the send, which is then counted
in ``stats.n_dropped``; use it only with a single subscriber, since one stalled subscriber then
stalls that topic for all of them.
"""

from __future__ import annotations

import logging
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


class ZmqSender(Sender):
    """Publishes every subject's messages on one bound PUB socket.

    Args:
        endpoint: where to bind, e.g. ``tcp://127.0.0.1:5555``; ``tcp://127.0.0.1:*`` picks a
            free port (read it back from ``address``).
        sndhwm: per-subscriber queue limit in messages.
        nodrop: make full queues visible as drops (see the module docstring).
        context: a ``zmq.Context`` (needed for ``inproc://``); default the process-wide one.
    """

    kind = "zmq"

    def __init__(
        self,
        endpoint: str = DEFAULT_ZMQ_ENDPOINT,
        *,
        sndhwm: int = DEFAULT_SNDHWM,
        nodrop: bool = False,
        context: Any = None,
    ) -> None:
        super().__init__()
        if sndhwm < 1:
            raise ValueError(f"sndhwm must be at least 1, but {sndhwm} is provided")
        self.endpoint = check_endpoint(endpoint)
        self.sndhwm = sndhwm
        self.nodrop = nodrop
        self._context = context
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

        self._zmq = zmq
        context = self._context or zmq.Context.instance()
        sock = context.socket(zmq.PUB)
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
