"""Live audio sources and control inputs: resampling, PCM decoding, pacing, loopback feeds."""

from __future__ import annotations

import io
import os
import socket
import sys
import threading
import time
import types

import numpy as np
import pytest
from conftest import make_sine, write_wav

from bridge.controls import KeyboardControl, UdpControl
from bridge.sources import (
    FileSource,
    MicSource,
    PcmDecoder,
    PipeSource,
    SourceError,
    StreamResampler,
    UdpSource,
    ZmqSource,
    parse_source,
)
from emoface_core.audio import SAMPLE_RATE, load_audio

TIMEOUT_S = 5.0


def _read_all(source, timeout_s: float = 0.05, limit_s: float = TIMEOUT_S) -> np.ndarray:
    """Read until the source ends (None), within ``limit_s``."""
    parts, deadline = [], time.monotonic() + limit_s
    while time.monotonic() < deadline:
        chunk = source.read(timeout_s)
        if chunk is None:
            return np.concatenate(parts) if parts else np.zeros(0, np.float32)
        parts.append(chunk)
    raise AssertionError(f"{source.name} did not end within {limit_s} s")


def _s16(x: np.ndarray) -> bytes:
    return np.round(np.clip(x, -1, 1) * 32767).astype("<i2").tobytes()


@pytest.mark.parametrize("rate", [8000, 11025, 22050, 44100, 48000, 16000])
def test_stream_resampler_equals_resample_poly_for_any_chunking(rate):
    from scipy.signal import resample_poly

    rng = np.random.default_rng(rate)
    x = rng.standard_normal(rate // 3 + 17)
    g = np.gcd(rate, SAMPLE_RATE)
    expected = resample_poly(x, SAMPLE_RATE // g, rate // g)
    resampler, parts, i = StreamResampler(rate), [], 0
    while i < x.size:
        k = int(rng.integers(1, 700))
        parts.append(resampler.push(x[i : i + k]))
        i += k
    parts.append(resampler.flush())
    got = np.concatenate(parts)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, atol=1e-6)


def test_pcm_decoder_handles_bytes_cut_mid_sample_and_mixes_channels():
    stereo = np.stack([make_sine(0.2), 0.5 * make_sine(0.2, freq_hz=440.0)], axis=1)
    data = _s16(stereo)
    decoder = PcmDecoder(SAMPLE_RATE, channels=2)
    parts = [decoder.decode(data[i : i + 333]) for i in range(0, len(data), 333)]  # odd cuts
    parts.append(decoder.flush())
    got = np.concatenate(parts)
    expected = (np.round(np.clip(stereo, -1, 1) * 32767) / 32768.0).mean(axis=1)
    np.testing.assert_allclose(got, expected, atol=1e-6)


def test_pcm_decoder_reads_float_and_resamples():
    x = make_sine(0.25, sample_rate=48000)
    decoder = PcmDecoder(48000, 1, "f32le")
    got = np.concatenate([decoder.decode(x.astype("<f4").tobytes()), decoder.flush()])
    expected = load_audio_like(x, 48000)
    np.testing.assert_allclose(got, expected, atol=1e-6)


def load_audio_like(x: np.ndarray, rate: int) -> np.ndarray:
    from emoface_core.audio import resample

    return resample(x, rate)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"sample_format": "u8"}, "sample format must be one of s16le, s32le, f32le"),
        ({"channels": 0}, "channels must be between 1 and 64"),
        ({"sample_rate": 10}, "sample rate must be between 1000 and 384000"),
    ],
)
def test_pcm_decoder_rejects_bad_settings(kwargs, message):
    with pytest.raises(SourceError, match=message):
        PcmDecoder(**kwargs)


class _FakeTime:
    def __init__(self) -> None:
        self.now_s = 0.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now_s

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now_s += seconds


@pytest.mark.parametrize("rate", [16000, 44100])
def test_file_source_is_paced_like_a_recording_and_equals_load_audio(tmp_path, rate):
    wav = write_wav(tmp_path / "a.wav", make_sine(0.5, sample_rate=rate), sample_rate=rate)
    fake = _FakeTime()
    source = FileSource(wav, chunk_ms=20, clock=fake.clock, sleep=fake.sleep)
    with source:
        assert source.expected_samples == 8000
        got, arrivals = [], []
        while (chunk := source.read(0.05)) is not None:
            if chunk.size:
                got.append(chunk)
                arrivals.append(fake.now_s)
    np.testing.assert_allclose(np.concatenate(got), load_audio(wav).samples, atol=1e-6)
    # Chunk k is released when its last sample would have been captured: (k + 1) * 20 ms.
    np.testing.assert_allclose(arrivals[:24], np.arange(1, 25) * 0.02, atol=1e-9)
    assert fake.now_s == pytest.approx(0.5, abs=0.021)


def test_file_source_as_fast_as_possible_and_bad_files(tmp_path):
    wav = write_wav(tmp_path / "b.wav", make_sine(0.3))
    with FileSource(wav, realtime=False) as source:
        assert source.realtime is False
        assert _read_all(source, 0.0).size == int(0.3 * SAMPLE_RATE)
        assert source.read(0.0) is None  # stays ended
    with pytest.raises(SourceError, match="missing.wav: no such audio file"):
        FileSource(tmp_path / "missing.wav").open()
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"RIFF....not audio")
    with pytest.raises(SourceError, match="junk.wav: not a readable audio file"):
        FileSource(junk).open()


def test_pipe_source_reads_raw_pcm_until_the_stream_closes():
    x = make_sine(0.4)
    read_fd, write_fd = os.pipe()
    with os.fdopen(read_fd, "rb", buffering=0) as reader:
        source = PipeSource(reader, sample_rate=SAMPLE_RATE)
        with source:
            assert source.read(0.01).size == 0  # nothing written yet: an empty chunk, no block
            with os.fdopen(write_fd, "wb") as writer:
                writer.write(_s16(x))
            got = _read_all(source)
    np.testing.assert_allclose(got, np.round(x * 32767) / 32768.0, atol=1e-6)


def test_pipe_source_from_stdin_like_stream_with_another_rate():
    x = make_sine(0.3, sample_rate=8000)
    source = PipeSource(io.BytesIO(_s16(x)), sample_rate=8000)
    with source:
        got = _read_all(source)
    assert got.size == int(0.3 * SAMPLE_RATE)
    assert source.name.startswith("pipe:")


def test_zmq_source_receives_pcm_messages_and_ends_on_an_empty_one():
    zmq = pytest.importorskip("zmq")
    x = make_sine(0.3)
    with ZmqSource("tcp://127.0.0.1:*") as source:
        assert source.endpoint.startswith("tcp://127.0.0.1:")
        push = zmq.Context.instance().socket(zmq.PUSH)
        push.setsockopt(zmq.LINGER, 1000)
        push.connect(source.endpoint)
        data = _s16(x)
        for i in range(0, len(data), 641):  # messages need not hold whole samples
            push.send(data[i : i + 641])
        push.send(b"")
        got = _read_all(source)
        push.close()
    np.testing.assert_allclose(got, np.round(x * 32767) / 32768.0, atol=1e-6)


def test_zmq_source_reports_a_bad_endpoint():
    pytest.importorskip("zmq")
    with pytest.raises(SourceError, match="zmq:nonsense://x: cannot bind"):
        ZmqSource("nonsense://x").open()


def test_udp_source_receives_datagrams_and_ends_on_an_empty_one():
    x = make_sine(0.25)
    with (
        UdpSource("127.0.0.1", 0) as source,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx,
    ):
        data = _s16(x)
        for i in range(0, len(data), 640):
            tx.sendto(data[i : i + 640], source.address)
        tx.sendto(b"", source.address)
        got = _read_all(source)
    np.testing.assert_allclose(got, np.round(x * 32767) / 32768.0, atol=1e-6)


def test_udp_source_ends_after_its_idle_timeout():
    with UdpSource("127.0.0.1", 0, idle_timeout_s=0.1) as source:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
            tx.sendto(_s16(make_sine(0.02)), source.address)
        assert source.read(1.0).size == 320
        t0 = time.monotonic()
        assert _read_all(source, 0.05).size == 0
        assert time.monotonic() - t0 < 1.0


class _FakeInputStream:
    """sounddevice.InputStream stand-in: a thread calls back with 20 ms blocks of a sine."""

    instances: list[_FakeInputStream] = []

    def __init__(self, *, samplerate, channels, dtype, blocksize, device, callback) -> None:
        assert dtype == "float32"
        self.samplerate, self.channels, self.blocksize = samplerate, channels, blocksize
        self.device, self.callback = device, callback
        self.signal = make_sine(0.2, sample_rate=samplerate, channels=channels)
        self.running = False
        self.closed = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        _FakeInputStream.instances.append(self)

    def start(self) -> None:
        self.running = True
        self._thread.start()

    def _run(self) -> None:
        for i in range(0, len(self.signal), self.blocksize):
            if not self.running:
                return
            block = self.signal[i : i + self.blocksize]
            self.callback(block.reshape(len(block), -1), len(block), None, None)

    def stop(self) -> None:
        self.running = False

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def fake_sounddevice(monkeypatch):
    module = types.ModuleType("sounddevice")
    module.InputStream = _FakeInputStream
    monkeypatch.setitem(sys.modules, "sounddevice", module)
    _FakeInputStream.instances.clear()
    return module


def test_mic_source_reads_the_device_callback_and_closes_it(fake_sounddevice):
    source = parse_source("mic:2", sample_rate=48000, channels=2)
    assert isinstance(source, MicSource) and source.device == 2
    with source:
        got, deadline = [], time.monotonic() + TIMEOUT_S
        while sum(c.size for c in got) < 3000 and time.monotonic() < deadline:
            got.append(source.read(0.1))
        device = _FakeInputStream.instances[0]
        assert device.samplerate == 48000 and device.channels == 2 and device.blocksize == 960
    assert device.closed and not device.running
    x = np.concatenate(got)
    expected = load_audio_like(make_sine(0.2, sample_rate=48000), 48000)
    np.testing.assert_allclose(x[100:2000], expected[100:2000], atol=1e-6)  # same samples


def test_mic_source_without_sounddevice_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "sounddevice", None)  # import fails
    with pytest.raises(ImportError, match="sounddevice"):
        MicSource().open()


@pytest.mark.parametrize(
    ("spec", "kind"),
    [
        ("stdin", PipeSource),
        ("-", PipeSource),
        ("mic", MicSource),
        ("file:/tmp/x.wav", FileSource),
        ("zmq:tcp://127.0.0.1:5600", ZmqSource),
        ("zmq+connect:tcp://127.0.0.1:5600", ZmqSource),
        ("udp:127.0.0.1:5700", UdpSource),
    ],
)
def test_parse_source_forms(spec, kind):
    source = parse_source(spec)
    assert isinstance(source, kind)
    if isinstance(source, ZmqSource):
        assert source.bind is (spec.startswith("zmq:"))


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("speaker", "unknown audio source 'speaker'; use one of: mic"),
        ("udp:5700", "expected udp:HOST:PORT"),
        ("udp:127.0.0.1:99999", "port must be between 0 and 65535"),
        ("file:", "unknown audio source"),
    ],
)
def test_parse_source_errors_say_what_is_allowed(spec, message):
    with pytest.raises(SourceError, match=message):
        parse_source(spec)


def test_udp_control_turns_datagrams_into_commands_and_drops_garbage():
    with UdpControl(port=0) as control, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
        assert control.poll() == []
        tx.sendto(b"emotion sad\n", ("127.0.0.1", control.port))
        tx.sendto(b"\xff\xfe not utf-8", ("127.0.0.1", control.port))
        tx.sendto(b'{"emotion": "happy"}\nquit', ("127.0.0.1", control.port))
        commands, deadline = [], time.monotonic() + TIMEOUT_S
        while len(commands) < 3 and time.monotonic() < deadline:
            commands += control.poll()
            time.sleep(0.01)
    assert commands == ["emotion sad", '{"emotion": "happy"}', "quit"]


@pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a pseudo-terminal")
def test_keyboard_control_maps_digit_keys_to_emotions_on_a_terminal():
    master, slave = os.openpty()
    with os.fdopen(slave, "r") as tty_in:
        control = KeyboardControl(tty_in).open()
        try:
            os.write(master, b"3x6q")
            commands, deadline = [], time.monotonic() + TIMEOUT_S
            while len(commands) < 3 and time.monotonic() < deadline:
                commands += control.poll()
                time.sleep(0.01)
        finally:
            control.close()
            os.close(master)
    assert commands == ["emotion 3", "emotion 6", "quit"]


def test_keyboard_control_refuses_a_non_terminal(tmp_path):
    with open(tmp_path / "f.txt", "w+") as not_a_tty, pytest.raises(SourceError, match="terminal"):
        KeyboardControl(not_a_tty).open()
