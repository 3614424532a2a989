"""Live audio sources: file, stdin, ZeroMQ, UDP and microphone, all read the same way.

Every source delivers 16 kHz mono float32 chunks through one call, ``read(timeout_s)``: a chunk,
an empty array when nothing arrived in time, or None once the audio has ended. Sources open and
close like transports (``with source: ...``) and keep their own state, so a process can read
several at once.

Raw PCM (stdin, ZeroMQ, UDP) is 16-bit signed little-endian mono at 16 kHz unless told
otherwise (``sample_rate``, ``channels``, ``sample_format``); other rates are resampled with a
streaming polyphase filter that gives exactly what ``scipy.signal.resample_poly`` gives for the
whole signal. On ZeroMQ (a PULL socket) and UDP each message or datagram carries any whole or
partial number of samples, and an empty message ends the stream. ``ffmpeg ... -f s16le -ar 16000
-ac 1 udp://127.0.0.1:PORT`` feeds the UDP source directly.

Control inputs (emotion changes while a source plays) are in ``bridge.controls``.

Longer than most modules (~700 lines) because it holds one small class per kind of source on a
shared lifecycle (``AudioSource``) plus the streaming PCM decoder and resampler they all use;
splitting them per source would scatter that shared part.
"""

from __future__ import annotations

import logging
import math
import queue
import socket
import sys
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from emoface_core.audio import SAMPLE_RATE, to_mono
from emoface_core.errors import AudioError, EmoFaceError

log = logging.getLogger(__name__)

SAMPLE_FORMATS: dict[str, tuple[str, float]] = {  # name -> (numpy dtype, full scale)
    "s16le": ("<i2", 32768.0),
    "s32le": ("<i4", 2147483648.0),
    "f32le": ("<f4", 1.0),
}
DEFAULT_CHUNK_MS = 20.0  # one chunk per 20 ms: 320 samples at 16 kHz
DEFAULT_HOST = "127.0.0.1"  # listeners bind loopback unless told otherwise
MAX_DATAGRAM = 65_535
SOURCE_FORMS = "mic[:DEVICE], stdin, file:PATH, zmq:ENDPOINT, zmq+connect:ENDPOINT, udp:HOST:PORT"


class SourceError(EmoFaceError, ValueError):
    """An audio source cannot be opened or its spec does not parse."""


class StreamResampler:
    """Polyphase resampling of a signal that arrives in pieces, equal to ``resample_poly``.

    Output sample ``m`` is emitted once every input sample its filter touches has arrived (about
    ten input samples of delay); ``flush`` treats the samples after the end as zeros, as
    ``resample_poly`` does, so the concatenated output equals the whole-signal result.

    Args:
        from_hz: input rate.
        to_hz: output rate.
    """

    def __init__(self, from_hz: int, to_hz: int = SAMPLE_RATE) -> None:
        from scipy.signal import firwin

        if from_hz <= 0 or to_hz <= 0:
            raise SourceError(f"sample rates must be positive, got {from_hz} -> {to_hz}")
        g = math.gcd(int(from_hz), int(to_hz))
        self.up, self.down = int(to_hz) // g, int(from_hz) // g
        self._n_in = 0
        self._n_out = 0
        self._x = np.zeros(0, dtype=np.float64)  # inputs from _x_base on
        self._x_base = 0
        if self.up == self.down:
            return
        # The filter exactly as scipy.signal.resample_poly designs and pads it.
        max_rate = max(self.up, self.down)
        half_len = 10 * max_rate
        h = firwin(2 * half_len + 1, 1.0 / max_rate, window=("kaiser", 5.0)) * self.up
        n_pre_pad = self.down - half_len % self.down
        self._h = np.concatenate([np.zeros(n_pre_pad), h])
        self._pre_remove = (half_len + n_pre_pad) // self.down

    def push(self, samples: np.ndarray) -> np.ndarray:
        """Add input samples ``[n]``; return the output samples now determined (float32)."""
        x = np.asarray(samples, dtype=np.float64).reshape(-1)
        if self.up == self.down:
            self._n_in += x.size
            return x.astype(np.float32)
        self._x = np.concatenate([self._x, x])
        self._n_in += x.size
        # Output m needs inputs up to floor((m + pre_remove) * down / up).
        stop = (self._n_in * self.up - 1) // self.down - self._pre_remove + 1 if self._n_in else 0
        return self._emit(stop)

    def flush(self) -> np.ndarray:
        """Return the remaining output (the signal has ended)."""
        if self.up == self.down:
            return np.zeros(0, dtype=np.float32)
        total = -(-self._n_in * self.up // self.down)  # ceil, as resample_poly
        return self._emit(total)

    def _emit(self, stop: int) -> np.ndarray:
        from scipy.signal import upfirdn

        if stop <= self._n_out:
            return np.zeros(0, dtype=np.float32)
        up, down, taps = self.up, self.down, len(self._h)
        first = (self._n_out + self._pre_remove) * down  # upsampled index of the first output
        lowest = max(0, -(-(first - (taps - 1)) // up))  # lowest input it touches
        i0 = lowest // down * down  # segment start: a multiple of down keeps the phase
        assert i0 >= self._x_base, (i0, self._x_base)
        seg = self._x[i0 - self._x_base :]
        seg = np.concatenate([seg, np.zeros(taps // up + 2)])  # inputs past the end are zeros
        y = upfirdn(self._h, seg, up, down)
        offset = i0 * up // down
        out = y[self._n_out + self._pre_remove - offset : stop + self._pre_remove - offset]
        self._n_out = stop
        # Keep the inputs the next output can touch, from a multiple of down.
        nxt = (self._n_out + self._pre_remove) * down
        keep = max(0, -(-(nxt - (taps - 1)) // up)) // down * down
        if keep > self._x_base:
            self._x = self._x[keep - self._x_base :]
            self._x_base = keep
        return out.astype(np.float32)


class PcmDecoder:
    """Raw PCM bytes -> 16 kHz mono float32, for byte streams cut anywhere (mid-sample too).

    Args:
        sample_rate: the PCM's rate in Hz.
        channels: interleaved channels (averaged to mono).
        sample_format: "s16le" (default), "s32le" or "f32le".
    """

    def __init__(
        self, sample_rate: int = SAMPLE_RATE, channels: int = 1, sample_format: str = "s16le"
    ) -> None:
        if sample_format not in SAMPLE_FORMATS:
            raise SourceError(
                f"sample format must be one of {', '.join(SAMPLE_FORMATS)}, "
                f"but {sample_format!r} is given"
            )
        if not 1 <= channels <= 64:
            raise SourceError(f"channels must be between 1 and 64, but {channels} is given")
        if not 1000 <= sample_rate <= 384_000:
            raise SourceError(
                f"sample rate must be between 1000 and 384000 Hz, but {sample_rate} is given"
            )
        dtype, self._full_scale = SAMPLE_FORMATS[sample_format]
        self._dtype = np.dtype(dtype)
        self.channels = channels
        self.sample_rate = sample_rate
        self._frame_bytes = self._dtype.itemsize * channels
        self._pending = b""
        self._resampler = StreamResampler(sample_rate, SAMPLE_RATE)

    def decode(self, data: bytes) -> np.ndarray:
        """Decode the next bytes; return the 16 kHz mono samples now available."""
        data = self._pending + bytes(data)
        usable = len(data) // self._frame_bytes * self._frame_bytes
        self._pending = data[usable:]
        if not usable:
            return np.zeros(0, dtype=np.float32)
        x = np.frombuffer(data[:usable], dtype=self._dtype).astype(np.float32) / self._full_scale
        if self._dtype.kind == "f":
            x = np.nan_to_num(x, nan=0.0, posinf=1.0, neginf=-1.0)
        return self._resampler.push(to_mono(x.reshape(-1, self.channels)))

    def flush(self) -> np.ndarray:
        """The bytes have ended: return the resampler's tail (a partial sample is dropped)."""
        if self._pending:
            log.warning(
                "dropped %d bytes at the end of the PCM stream (a partial sample)",
                len(self._pending),
            )
            self._pending = b""
        return self._resampler.flush()


class AudioSource(ABC):
    """Where live audio comes from; ``read`` returns 16 kHz mono float32 chunks.

    Attributes:
        realtime: True when audio arrives at the pace it is captured (a microphone, a network
            feed, a file read in real time); a runner then treats silence from it as a gap.
        expected_samples: the total 16 kHz length when known in advance (files), else None.
    """

    realtime: bool = True
    expected_samples: int | None = None

    def __init__(self) -> None:
        self._opened = False
        self._ended = False

    @property
    @abstractmethod
    def name(self) -> str:
        """What the source reads, for messages (e.g. ``udp:127.0.0.1:5700``)."""

    def open(self) -> AudioSource:
        """Start reading. Returns self.

        Raises:
            SourceError: the source cannot be opened (the message names it).
        """
        if not self._opened:
            self._open()
            self._opened = True
        return self

    def close(self) -> None:
        """Stop reading and release the device or socket; safe to call twice."""
        if self._opened:
            self._opened = False
            self._close()

    def __enter__(self) -> AudioSource:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def read(self, timeout_s: float) -> np.ndarray | None:
        """The next chunk, float32 ``[n]``; empty if none came in ``timeout_s``; None at the end."""
        if not self._opened:
            raise SourceError(f"{self.name}: read before open()")
        if self._ended:
            return None
        chunk = self._read(max(0.0, timeout_s))
        if chunk is None:
            self._ended = True
            tail = self._tail()
            return tail if tail.size else None
        return chunk

    @abstractmethod
    def _open(self) -> None: ...

    @abstractmethod
    def _close(self) -> None: ...

    @abstractmethod
    def _read(self, timeout_s: float) -> np.ndarray | None: ...

    def _tail(self) -> np.ndarray:
        return np.zeros(0, dtype=np.float32)


class FileSource(AudioSource):
    """A sound file read chunk by chunk, paced like a live recording (or as fast as possible).

    Args:
        path: anything soundfile reads (wav, flac, ogg...), any rate and channel count.
        realtime: release each chunk when its last sample would have been captured.
        chunk_ms: chunk length.
        clock: monotonic seconds (injectable for tests).
        sleep: sleeps for the given seconds (injectable for tests).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        realtime: bool = True,
        chunk_ms: float = DEFAULT_CHUNK_MS,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__()
        if chunk_ms <= 0:
            raise SourceError(f"chunk_ms must be > 0, but {chunk_ms} is given")
        self.path = Path(path)
        self.realtime = realtime
        self.chunk_ms = chunk_ms
        self.clock = clock
        self.sleep = sleep
        self._file: Any = None
        self._resampler: StreamResampler | None = None
        self._n_read = 0  # source frames read
        self._t0: float | None = None

    @property
    def name(self) -> str:
        """``file:PATH``."""
        return f"file:{self.path}"

    def _open(self) -> None:
        import soundfile as sf

        if not self.path.is_file():
            raise SourceError(f"{self.path}: no such audio file")
        try:
            self._file = sf.SoundFile(str(self.path))
        except Exception as e:  # soundfile raises several types for bad files
            reason = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise SourceError(f"{self.path}: not a readable audio file ({reason})") from e
        rate = self._file.samplerate
        self._resampler = StreamResampler(rate, SAMPLE_RATE)
        self._chunk = max(1, int(round(rate * self.chunk_ms / 1000.0)))
        if self._file.frames > 0:
            self.expected_samples = -(-self._file.frames * SAMPLE_RATE // rate)

    def _close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def _read(self, timeout_s: float) -> np.ndarray | None:
        rate = self._file.samplerate
        if self.realtime:
            now = self.clock()
            if self._t0 is None:
                self._t0 = now
            due = self._t0 + (self._n_read + self._chunk) / rate
            if due - now > timeout_s:
                self.sleep(timeout_s)
                return np.zeros(0, dtype=np.float32)
            if due > now:
                self.sleep(due - now)
        try:
            data = self._file.read(self._chunk, dtype="float32", always_2d=True)
        except Exception as e:  # a truncated file fails mid-way
            raise AudioError(f"{self.path}: read failed after {self._n_read} samples ({e})") from e
        if len(data) == 0:
            return None
        self._n_read += len(data)
        assert self._resampler is not None
        return self._resampler.push(to_mono(np.nan_to_num(data)))

    def _tail(self) -> np.ndarray:
        return self._resampler.flush() if self._resampler is not None else super()._tail()


class PipeSource(AudioSource):
    """Raw PCM from a byte stream (standard input by default), read on a background thread.

    Args:
        stream: a binary file object; None = ``sys.stdin.buffer``.
        sample_rate: PCM rate in Hz.
        channels: interleaved channels.
        sample_format: "s16le", "s32le" or "f32le".
        chunk_ms: bytes requested per read (a chunk of this length).
        realtime: the producer delivers audio at its real pace (e.g. ``arecord``, a TTS server).
    """

    def __init__(
        self,
        stream: BinaryIO | None = None,
        *,
        sample_rate: int = SAMPLE_RATE,
        channels: int = 1,
        sample_format: str = "s16le",
        chunk_ms: float = DEFAULT_CHUNK_MS,
        realtime: bool = True,
    ) -> None:
        super().__init__()
        self._stream = stream
        self._decoder = PcmDecoder(sample_rate, channels, sample_format)
        self.realtime = realtime
        width = np.dtype(SAMPLE_FORMATS[sample_format][0]).itemsize * channels
        self._read_bytes = max(width, int(sample_rate * chunk_ms / 1000.0) * width)
        self._queue: queue.Queue[bytes | None | BaseException] = queue.Queue()
        self._thread: threading.Thread | None = None

    @property
    def name(self) -> str:
        """``stdin`` or the stream's name."""
        return "stdin" if self._stream is None else f"pipe:{getattr(self._stream, 'name', '?')}"

    def _open(self) -> None:
        stream = self._stream if self._stream is not None else sys.stdin.buffer
        self._thread = threading.Thread(
            target=self._pump, args=(stream,), name="emoface-pipe", daemon=True
        )
        self._thread.start()

    def _pump(self, stream: BinaryIO) -> None:
        read = getattr(stream, "read1", stream.read)
        try:
            while True:
                data = read(self._read_bytes)
                if not data:
                    break
                self._queue.put(data)
        except (OSError, ValueError) as e:  # closed under us, or a broken pipe
            self._queue.put(e)
        self._queue.put(None)

    def _close(self) -> None:
        pass  # a blocking read cannot be interrupted; the daemon thread ends with its stream

    def _read(self, timeout_s: float) -> np.ndarray | None:
        try:
            item = self._queue.get(timeout=timeout_s) if timeout_s > 0 else self._queue.get_nowait()
        except queue.Empty:
            return np.zeros(0, dtype=np.float32)
        if isinstance(item, BaseException):
            log.warning("%s: read failed (%s); treating it as the end", self.name, item)
            return None
        if item is None:
            return None
        return self._decoder.decode(item)

    def _tail(self) -> np.ndarray:
        return self._decoder.flush()


class ZmqSource(AudioSource):
    """Raw PCM messages on a ZeroMQ PULL socket; an empty message ends the stream.

    Args:
        endpoint: e.g. ``tcp://127.0.0.1:5556``.
        bind: bind (the producer connects) or connect (the producer binds).
        sample_rate: PCM rate in Hz.
        channels: interleaved channels.
        sample_format: "s16le", "s32le" or "f32le".
    """

    def __init__(
        self,
        endpoint: str,
        *,
        bind: bool = True,
        sample_rate: int = SAMPLE_RATE,
        channels: int = 1,
        sample_format: str = "s16le",
    ) -> None:
        super().__init__()
        self.endpoint = endpoint
        self.bind = bind
        self._decoder = PcmDecoder(sample_rate, channels, sample_format)
        self._socket: Any = None

    @property
    def name(self) -> str:
        """``zmq:ENDPOINT`` (the bound endpoint once open)."""
        return f"zmq:{self.endpoint}"

    def _open(self) -> None:
        try:
            import zmq
        except ImportError as e:
            raise ImportError("the ZeroMQ source needs pyzmq: pip install pyzmq") from e
        sock: Any = zmq.Context.instance().socket(zmq.PULL)
        sock.setsockopt(zmq.LINGER, 0)
        try:
            if self.bind:
                sock.bind(self.endpoint)
                self.endpoint = sock.getsockopt(zmq.LAST_ENDPOINT).decode()
            else:
                sock.connect(self.endpoint)
        except zmq.ZMQError as e:
            sock.close()
            raise SourceError(
                f"zmq:{self.endpoint}: cannot {'bind' if self.bind else 'connect'} ({e})"
            ) from e
        self._socket = sock

    def _close(self) -> None:
        if self._socket is not None:
            self._socket.close(linger=0)
            self._socket = None

    def _read(self, timeout_s: float) -> np.ndarray | None:
        import zmq

        if not self._socket.poll(int(timeout_s * 1000), zmq.POLLIN):
            return np.zeros(0, dtype=np.float32)
        parts = self._socket.recv_multipart(zmq.NOBLOCK)
        data = parts[-1]  # a leading topic/routing frame, if any, is ignored
        if not data:
            return None
        return self._decoder.decode(data)

    def _tail(self) -> np.ndarray:
        return self._decoder.flush()


class UdpSource(AudioSource):
    """Raw PCM datagrams on a UDP port; an empty datagram (or ``idle_timeout_s`` of quiet) ends it.

    Args:
        host: address to bind (loopback by default).
        port: port to bind; 0 picks a free one (see ``address``).
        sample_rate: PCM rate in Hz.
        channels: interleaved channels.
        sample_format: "s16le", "s32le" or "f32le".
        idle_timeout_s: end the stream after this long without a datagram (once audio has
            started); None waits forever (gaps are filled by the runner meanwhile).
    """

    def __init__(
        self,
        host: str = DEFAULT_HOST,
        port: int = 0,
        *,
        sample_rate: int = SAMPLE_RATE,
        channels: int = 1,
        sample_format: str = "s16le",
        idle_timeout_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        if not 0 <= port <= 65535:
            raise SourceError(f"port must be between 0 and 65535, but {port} is given")
        self.host = host
        self.port = port
        self.idle_timeout_s = idle_timeout_s
        self.clock = clock
        self._decoder = PcmDecoder(sample_rate, channels, sample_format)
        self._socket: socket.socket | None = None
        self._last: float | None = None

    @property
    def name(self) -> str:
        """``udp:HOST:PORT``."""
        return f"udp:{self.host}:{self.port}"

    @property
    def address(self) -> tuple[str, int]:
        """The bound ``(host, port)``."""
        return self.host, self.port

    def _open(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.bind((self.host, self.port))
        except OSError as e:
            sock.close()
            raise SourceError(
                f"udp:{self.host}:{self.port}: cannot bind ({e.strerror or e})"
            ) from e
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        self.port = sock.getsockname()[1]
        self._socket = sock

    def _close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def _read(self, timeout_s: float) -> np.ndarray | None:
        assert self._socket is not None
        self._socket.settimeout(timeout_s if timeout_s > 0 else 1e-6)
        try:
            data, _ = self._socket.recvfrom(MAX_DATAGRAM)
        except (TimeoutError, BlockingIOError):
            last, limit = self._last, self.idle_timeout_s
            if last is not None and limit is not None and self.clock() - last > limit:
                return None
            return np.zeros(0, dtype=np.float32)
        self._last = self.clock()
        if not data:
            return None
        return self._decoder.decode(data)

    def _tail(self) -> np.ndarray:
        return self._decoder.flush()


class MicSource(AudioSource):
    """A microphone through the optional ``sounddevice`` package (PortAudio).

    Args:
        device: device name or index; None = the system default input.
        sample_rate: capture rate in Hz (resampled to 16 kHz when different).
        channels: captured channels (averaged to mono).
        chunk_ms: capture block length.
    """

    def __init__(
        self,
        device: str | int | None = None,
        *,
        sample_rate: int = SAMPLE_RATE,
        channels: int = 1,
        chunk_ms: float = DEFAULT_CHUNK_MS,
    ) -> None:
        super().__init__()
        self.device = device
        self.sample_rate = sample_rate
        self.channels = channels
        self.chunk_ms = chunk_ms
        self.n_overflows = 0
        self._resampler = StreamResampler(sample_rate, SAMPLE_RATE)
        self._queue: queue.Queue[np.ndarray] = queue.Queue()
        self._stream: Any = None

    @property
    def name(self) -> str:
        """``mic`` or ``mic:DEVICE``."""
        return "mic" if self.device is None else f"mic:{self.device}"

    def _open(self) -> None:
        try:
            import sounddevice
        except ImportError as e:
            raise ImportError(
                "the microphone source needs the optional sounddevice package: "
                "pip install 'emoface[live]' (or pip install sounddevice)"
            ) from e
        except OSError as e:  # the package is there, the PortAudio library it loads is not
            raise ImportError(
                f"sounddevice is installed but cannot load PortAudio ({e}): install the "
                "PortAudio library (Debian/Ubuntu: apt-get install libportaudio2; macOS: brew "
                "install portaudio; Windows: the sounddevice wheel includes it, reinstall it)"
            ) from e

        def callback(indata: np.ndarray, n_frames: int, time_info: Any, status: Any) -> None:
            if status:
                self.n_overflows += 1
            self._queue.put(np.array(indata, dtype=np.float32, copy=True))

        try:
            stream = sounddevice.InputStream(
                samplerate=self.sample_rate,
                channels=self.channels,
                dtype="float32",
                blocksize=max(1, int(self.sample_rate * self.chunk_ms / 1000.0)),
                device=self.device,
                callback=callback,
            )
            stream.start()
        except Exception as e:  # PortAudio errors: no device, busy, unsupported rate
            raise SourceError(f"{self.name}: cannot open the input device ({e})") from e
        self._stream = stream

    def _close(self) -> None:
        if self._stream is not None:
            try:
                self._stream.stop()
            finally:
                self._stream.close()
                self._stream = None

    def _read(self, timeout_s: float) -> np.ndarray | None:
        try:
            block = (
                self._queue.get(timeout=timeout_s) if timeout_s > 0 else self._queue.get_nowait()
            )
        except queue.Empty:
            return np.zeros(0, dtype=np.float32)
        return self._resampler.push(to_mono(block))


def parse_source(
    spec: str,
    *,
    sample_rate: int = SAMPLE_RATE,
    channels: int = 1,
    sample_format: str = "s16le",
    realtime: bool = True,
    chunk_ms: float = DEFAULT_CHUNK_MS,
    idle_timeout_s: float | None = None,
) -> AudioSource:
    """Build a source from its command-line form.

    Forms: ``mic`` / ``mic:DEVICE``, ``stdin`` (or ``-``), ``file:PATH``, ``zmq:ENDPOINT``
    (binds a PULL socket), ``zmq+connect:ENDPOINT``, ``udp:HOST:PORT``. The PCM options apply to
    stdin, ZeroMQ and UDP; a microphone uses ``sample_rate`` and ``channels``; a file knows its own.

    Raises:
        SourceError: the spec matches no form (the message lists them).
    """
    spec = spec.strip()
    kind, _, rest = spec.partition(":")
    if spec in ("stdin", "-"):
        return PipeSource(
            None,
            sample_rate=sample_rate,
            channels=channels,
            sample_format=sample_format,
            chunk_ms=chunk_ms,
            realtime=realtime,
        )
    if kind == "mic":
        device: str | int | None = rest or None
        if isinstance(device, str) and device.isdigit():
            device = int(device)
        return MicSource(device, sample_rate=sample_rate, channels=channels, chunk_ms=chunk_ms)
    if kind == "file" and rest:
        return FileSource(rest, realtime=realtime, chunk_ms=chunk_ms)
    if kind in ("zmq", "zmq+connect") and rest:
        return ZmqSource(
            rest,
            bind=kind == "zmq",
            sample_rate=sample_rate,
            channels=channels,
            sample_format=sample_format,
        )
    if kind == "udp" and rest:
        host, _, port = rest.rpartition(":")
        if not port.isdigit() or not host:
            raise SourceError(
                f"bad UDP source {spec!r}: expected udp:HOST:PORT, e.g. udp:127.0.0.1:5700"
            )
        return UdpSource(
            host,
            int(port),
            sample_rate=sample_rate,
            channels=channels,
            sample_format=sample_format,
            idle_timeout_s=idle_timeout_s,
        )
    raise SourceError(f"unknown audio source {spec!r}; use one of: {SOURCE_FORMS}")
