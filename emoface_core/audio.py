"""Audio loading: any file soundfile reads -> mono float32 at 16 kHz, and the 60 fps frame grid.

The model sees audio the way the authors' release fed it: 16 kHz mono, normalised to zero mean
and unit variance (the wav2vec2 processor's default). Frame counts follow the release:
``int(samples / sample_rate * 60)`` of the *source* file, computed in integers so that no
floating-point rounding can add or drop a frame.
"""

from __future__ import annotations

import logging
import math
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from emoface_core.errors import AudioError

log = logging.getLogger(__name__)

SAMPLE_RATE = 16_000  # Hz, what wav2vec2 was trained on
FPS = 60  # animation frames per second, the dataset's rate
NORM_EPS = 1e-7  # the wav2vec2 feature extractor's variance epsilon


@dataclass(frozen=True)
class Audio:
    """Decoded audio ready for the engines.

    Attributes:
        samples: mono float32 at ``SAMPLE_RATE``, not normalised, shape ``[S]``.
        source_sample_rate: the file's own rate, kept for the frame count.
        source_n_samples: the file's own length in samples (per channel).
        path: where it came from, for messages and metadata ("" for in-memory audio).
    """

    samples: np.ndarray
    source_sample_rate: int = SAMPLE_RATE
    source_n_samples: int = -1
    path: str = ""

    def __post_init__(self) -> None:
        if self.source_n_samples < 0:
            object.__setattr__(self, "source_n_samples", int(self.samples.shape[0]))

    @property
    def n_frames(self) -> int:
        """Frames at 60 fps, as the release counts them."""
        return frame_count(self.source_n_samples, self.source_sample_rate)

    @property
    def duration_s(self) -> float:
        """Length of the source audio in seconds."""
        return self.source_n_samples / self.source_sample_rate

    @classmethod
    def from_array(cls, samples: np.ndarray, sample_rate: int = SAMPLE_RATE) -> Audio:
        """Wrap in-memory samples (``[S]`` or ``[S, C]``, any rate) as 16 kHz mono audio."""
        mono = to_mono(np.asarray(samples))
        return cls(
            samples=resample(mono, sample_rate, SAMPLE_RATE),
            source_sample_rate=sample_rate,
            source_n_samples=int(mono.shape[0]),
        )


def frame_count(n_samples: int, sample_rate: int) -> int:
    """Return ``int(n_samples / sample_rate * FPS)`` computed exactly in integers."""
    return (int(n_samples) * FPS) // int(sample_rate)


def to_mono(samples: np.ndarray) -> np.ndarray:
    """Average the channels of ``[S, C]`` audio; ``[S]`` passes through. Returns float32."""
    if samples.ndim == 2:
        samples = samples.mean(axis=1)
    elif samples.ndim != 1:
        raise AudioError(f"audio must be [samples] or [samples, channels], got {samples.shape}")
    return np.ascontiguousarray(samples, dtype=np.float32)


def resample(samples: np.ndarray, from_hz: int, to_hz: int = SAMPLE_RATE) -> np.ndarray:
    """Resample with a polyphase filter (scipy), exact ratio, float32 out."""
    if from_hz == to_hz:
        return samples.astype(np.float32, copy=False)
    from scipy.signal import resample_poly

    g = math.gcd(int(from_hz), int(to_hz))
    out = resample_poly(samples.astype(np.float64), to_hz // g, from_hz // g)
    return out.astype(np.float32)


def normalize(samples: np.ndarray) -> np.ndarray:
    """Zero mean, unit variance, as ``Wav2Vec2FeatureExtractor(do_normalize=True)`` does."""
    x = samples.astype(np.float32, copy=False)
    return ((x - x.mean()) / np.sqrt(x.var() + NORM_EPS)).astype(np.float32)


@dataclass(frozen=True)
class AudioInfo:
    """What an audio file says about itself before it is decoded.

    Attributes:
        sample_rate: samples per second per channel.
        channels: channels.
        n_samples: samples per channel its header declares (-1 when it does not say).
    """

    sample_rate: int
    channels: int
    n_samples: int

    @property
    def duration_s(self) -> float:
        """Declared length in seconds (NaN when unknown)."""
        return self.n_samples / self.sample_rate if self.n_samples >= 0 else float("nan")


def _wav_declared_samples(path: Path) -> int | None:
    """Samples per channel a RIFF/WAVE header declares (its ``data`` chunk size), if it says.

    libsndfile clamps a WAV's frame count to what the file holds, so a file cut short by a
    crashed export would pass as a shorter clip; the header's own count shows it.
    """
    try:
        with open(path, "rb") as f:
            head = f.read(12)
            if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
                return None
            block_align = 0
            for _ in range(64):  # chunks before "data": fmt, LIST, fact, ...
                chunk = f.read(8)
                if len(chunk) < 8:
                    return None
                cid, size = chunk[:4], struct.unpack("<I", chunk[4:])[0]
                if cid == b"fmt ":
                    fmt = f.read(size + (size & 1))
                    block_align = struct.unpack("<H", fmt[12:14])[0] if len(fmt) >= 14 else 0
                    continue
                if cid == b"data":
                    # 0 and 0xFFFFFFFF: a stream written without knowing its length.
                    if not block_align or size in (0, 0xFFFFFFFF):
                        return None
                    return size // block_align
                f.seek(size + (size & 1), 1)
    except OSError:
        return None
    return None


def probe_audio(path: str | Path) -> AudioInfo:
    """Read an audio file's header (rate, channels, declared length) without decoding it.

    Raises:
        AudioError: missing, or not a file soundfile can read.
    """
    import soundfile as sf

    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: no such audio file")
    try:
        # A file object, not the name: names that are not UTF-8 open too (soundfile would
        # encode them strictly).
        with open(path, "rb") as f:
            info = sf.info(f)
    except Exception as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise AudioError(f"{path}: not a readable audio file ({reason})") from e
    declared = _wav_declared_samples(path)
    n_samples = declared if declared is not None else int(info.frames)
    return AudioInfo(int(info.samplerate), int(info.channels), n_samples)


def read_audio_file(path: str | Path, *, allow_truncated: bool = False) -> tuple[np.ndarray, int]:
    """Decode a whole audio file as it is: float32 ``[S, C]`` and its sample rate.

    Args:
        path: the audio file.
        allow_truncated: a file holding fewer samples than its header declares is decoded as it
            is, with a warning, instead of refused.

    Raises:
        AudioError: the file is missing, empty, truncated, not audio, or holds NaN/inf samples;
            the message names it.
    """
    import soundfile as sf

    path = Path(path)
    info = probe_audio(path)
    try:
        with open(path, "rb") as f:
            data, rate = sf.read(f, dtype="float32", always_2d=True)
    except Exception as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise AudioError(f"{path}: not a readable audio file ({reason})") from e
    if data.shape[0] == 0:
        raise AudioError(f"{path}: the audio file holds no samples")
    if 0 <= data.shape[0] < info.n_samples:
        message = (
            f"{path}: truncated: the header declares {info.n_samples} samples "
            f"({info.n_samples / rate:.3f} s) but the file holds {data.shape[0]} "
            f"({data.shape[0] / rate:.3f} s)"
        )
        if not allow_truncated:
            raise AudioError(message + "; re-export it, or pass --allow-truncated")
        log.warning("%s; animating what is there", message)
    if not np.all(np.isfinite(data)):
        raise AudioError(f"{path}: the audio holds NaN or infinite samples")
    return data, int(rate)


def load_audio(path: str | Path, *, allow_truncated: bool = False) -> Audio:
    """Load any file that soundfile reads (wav, flac, ogg, ...) as 16 kHz mono float32.

    Args:
        path: the audio file.
        allow_truncated: bake what a truncated file holds (warning) instead of refusing it.

    Returns:
        The decoded ``Audio``.

    Raises:
        AudioError: the file is missing, empty, shorter than one frame, truncated or not audio;
            the message names it.
    """
    data, rate = read_audio_file(path, allow_truncated=allow_truncated)
    if frame_count(data.shape[0], rate) == 0:
        # No frame to animate: an empty bake would break every later step (stream, plot).
        raise AudioError(f"{path}: the audio is shorter than one frame (1/{FPS} s)")
    mono = to_mono(data)
    return Audio(
        samples=resample(mono, int(rate)),
        source_sample_rate=int(rate),
        source_n_samples=int(mono.shape[0]),
        path=str(path),
    )
