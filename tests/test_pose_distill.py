"""Distilling the procedural engine's poses from a teacher engine (``emoface distill-poses``)."""

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from conftest import make_sine, write_wav

from bridge.cli import main
from emoface_core.audio import Audio, load_audio
from emoface_core.controllers import GAZE_X, GAZE_Y, N_CONTROLLERS
from emoface_core.emotion import EMOTIONS, EmotionTimeline
from emoface_core.engines.base import EngineBase
from emoface_core.engines.procedural.distill import distill_poses, write_poses
from emoface_core.engines.procedural.engine import ProceduralEngine

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "audio"


class ConstantFaceTeacher(EngineBase):
    """A teacher that holds one known face per emotion (blended by the timeline's weights)."""

    name = "constant"
    wants_smoothing = False

    def __init__(self) -> None:
        self.faces = np.random.default_rng(0).uniform(0.1, 0.6, (len(EMOTIONS), N_CONTROLLERS))

    def infer(self, audio: Audio, timeline: EmotionTimeline) -> np.ndarray:
        weights = timeline.weights(audio.n_frames, 60, 0)
        return (weights @ self.faces).astype(np.float32)

    def describe(self) -> dict:
        return {"name": self.name}


def _mean_face(engine, audios, emotion: str) -> np.ndarray:
    timeline = EmotionTimeline.constant(emotion)
    return np.concatenate([engine.infer(a, timeline) for a in audios]).mean(axis=0)


@pytest.fixture(scope="module")
def speech() -> list[Audio]:
    return [load_audio(p) for p in sorted(EXAMPLES.glob("*.wav"))]


@pytest.fixture(scope="module")
def distilled(speech):
    return distill_poses(ConstantFaceTeacher(), speech)


def test_distilled_poses_give_the_teachers_mean_face(distilled, speech):
    teacher = ConstantFaceTeacher()
    assert distilled.n_clips == 3 and distilled.n_frames == sum(a.n_frames for a in speech)
    assert (distilled.error_after < 0.2 * distilled.error_before).all()
    engine = ProceduralEngine()
    engine.data = dataclasses.replace(engine.data, poses=distilled.poses)
    fitted = np.ones(N_CONTROLLERS, dtype=bool)
    fitted[[GAZE_X, GAZE_Y]] = False
    for e, name in enumerate(EMOTIONS):
        gap = np.abs(_mean_face(engine, speech, name) - teacher.faces[e])[fitted]
        assert gap.mean() < 0.02  # lip channels that fully yield to speech cannot match exactly
        assert np.median(gap) < 0.005
    assert not distilled.poses[:, [GAZE_X, GAZE_Y]].any()  # gaze is the post-processing's


def test_written_poses_file_loads_and_keeps_the_articulation(distilled, tmp_path):
    path = write_poses(tmp_path / "poses.yaml", distilled, teacher="constant teacher")
    loaded = ProceduralEngine(poses_path=path).data
    assert np.abs(loaded.poses - distilled.poses).max() <= 0.005  # written to 3 decimals
    assert np.array_equal(loaded.gains, ProceduralEngine().data.gains)
    assert "constant teacher" in path.read_text()
    assert not list(tmp_path.glob(".*.part"))


def test_no_clips_is_an_error():
    with pytest.raises(ValueError, match="at least one audio clip"):
        distill_poses(ConstantFaceTeacher(), [])


def test_cli_distils_from_a_checkpoint_and_skips_bad_clips(
    tiny_release_checkpoint, tmp_path, capsys
):
    clips = tmp_path / "clips"
    clips.mkdir()
    write_wav(clips / "a.wav", make_sine(1.0, amplitude=0.3))
    write_wav(clips / "b.wav", make_sine(0.8, freq_hz=330.0, amplitude=0.3))
    (clips / "broken.wav").write_bytes(b"not audio")
    out = tmp_path / "poses" / "studio.yaml"
    code = main(
        [
            "distill-poses",
            str(clips),
            "--checkpoint",
            str(tiny_release_checkpoint),
            "--device",
            "cpu",
            "--iterations",
            "2",
            "-o",
            str(out),
        ]
    )
    err = capsys.readouterr().err
    assert code == 1  # one clip skipped: the poses are written from the rest, the exit says so
    assert "broken.wav" in err and "Traceback" not in err
    assert "over 2 clip(s)" in err
    engine = ProceduralEngine(poses_path=out)
    assert engine.describe()["poses"] == str(out)
    # The network's mean face is now the procedural engine's, per emotion, on those clips.
    from emoface_core.engines import load_engine

    teacher = load_engine("emoface", checkpoint=tiny_release_checkpoint, device="cpu")
    audios = [load_audio(clips / "a.wav"), load_audio(clips / "b.wav")]
    for name in ("angry", "sad"):
        target = _mean_face(teacher, audios, name)
        fitted = np.abs(_mean_face(engine, audios, name) - target)
        packaged = np.abs(_mean_face(ProceduralEngine(), audios, name) - target)
        assert fitted.mean() < 0.5 * packaged.mean()


def test_cli_without_weights_says_what_to_download(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("EMOFACE_CHECKPOINT", raising=False)
    monkeypatch.setattr("emoface_core.engines.DEFAULT_CHECKPOINT", tmp_path / "none.pth")
    clip = write_wav(tmp_path / "a.wav", make_sine(0.5))
    out = tmp_path / "poses.yaml"
    assert main(["distill-poses", str(clip), "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert "needs weights" in err and "--checkpoint" in err and len(err.strip().splitlines()) == 1
    assert not out.exists()
