import numpy as np
import pytest
from conftest import make_sine, write_wav

from emoface_core.audio import SAMPLE_RATE, Audio, frame_count, load_audio, normalize
from emoface_core.errors import AudioError


@pytest.mark.parametrize(
    "sample_rate, n_samples, expected",
    [
        (48_000, 161_280, 201),
        (16_000, 16_000, 60),
        (44_100, 44_100 * 2 + 100, 120),
        (22_050, 11_025, 30),
        (8_000, 7_999, 59),
    ],
)
def test_frame_count_matches_release_formula(sample_rate, n_samples, expected):
    assert frame_count(n_samples, sample_rate) == expected
    assert frame_count(n_samples, sample_rate) == int(n_samples / sample_rate * 60)


@pytest.mark.parametrize("sample_rate", [8_000, 16_000, 22_050, 44_100, 48_000])
def test_load_any_rate_gives_16k_mono_and_release_frame_count(tmp_path, sample_rate):
    samples = make_sine(1.37, sample_rate=sample_rate, channels=2)
    audio = load_audio(write_wav(tmp_path / f"a{sample_rate}.wav", samples, sample_rate))
    assert audio.samples.dtype == np.float32 and audio.samples.ndim == 1
    assert abs(audio.samples.shape[0] - 1.37 * SAMPLE_RATE) <= 2
    assert audio.n_frames == int(samples.shape[0] / sample_rate * 60)
    assert audio.source_sample_rate == sample_rate


def test_flac_and_ogg_load(tmp_path):
    x = make_sine(0.5)
    for ext, subtype in (("flac", "PCM_16"), ("ogg", "VORBIS")):
        audio = load_audio(write_wav(tmp_path / f"x.{ext}", x, subtype=subtype))
        assert audio.n_frames == 30


def test_stereo_is_averaged(tmp_path):
    left = make_sine(0.5)
    stereo = np.stack([left, np.zeros_like(left)], axis=1)
    audio = load_audio(write_wav(tmp_path / "s.wav", stereo, subtype="FLOAT"))
    np.testing.assert_allclose(audio.samples, left / 2, atol=1e-6)


def test_normalize_zero_mean_unit_variance():
    x = normalize(make_sine(1.0, amplitude=0.1) + 0.3)
    assert abs(x.mean()) < 1e-5 and abs(x.std() - 1) < 1e-3
    assert np.all(normalize(np.zeros(100, np.float32)) == 0)  # silence stays finite


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "not a readable audio file"),
        (b"this is not audio at all" * 10, "not a readable audio file"),
    ],
)
def test_bad_files_name_the_file(tmp_path, content, message):
    path = tmp_path / "bad.wav"
    path.write_bytes(content)
    with pytest.raises(AudioError, match=message) as err:
        load_audio(path)
    assert str(path) in str(err.value)


def test_truncated_and_empty_wav(tmp_path):
    good = write_wav(tmp_path / "good.wav", make_sine(0.5))
    truncated = tmp_path / "truncated.wav"
    truncated.write_bytes(good.read_bytes()[:30])
    with pytest.raises(AudioError, match="truncated.wav"):
        load_audio(truncated)
    empty = write_wav(tmp_path / "empty.wav", np.zeros(0, np.float32))
    with pytest.raises(AudioError, match="no samples"):
        load_audio(empty)
    with pytest.raises(AudioError, match="no such audio file"):
        load_audio(tmp_path / "missing.wav")


def test_audio_shorter_than_one_frame_is_rejected(tmp_path):
    # 5 ms gives int(0.005 * 60) = 0 frames: baking it used to write an empty, unusable file.
    tiny = write_wav(tmp_path / "tiny.wav", make_sine(0.005))
    with pytest.raises(AudioError, match=r"tiny\.wav: the audio is shorter than one frame"):
        load_audio(tiny)
    assert load_audio(write_wav(tmp_path / "one.wav", make_sine(0.02))).n_frames == 1


def test_from_array_resamples():
    audio = Audio.from_array(make_sine(1.0, sample_rate=48_000), 48_000)
    assert audio.n_frames == 60 and abs(audio.samples.shape[0] - 16_000) <= 1
