"""emoface preview: the 2D face follows the channels; GIF and MP4 (with audio) come out right."""

import json
import shutil
import subprocess

import numpy as np
import pytest
from conftest import make_sine, write_wav

pytest.importorskip("PIL")

from bridge.cli import main
from emoface_core.animation import Animation
from emoface_core.controllers import CONTROLLER_INDEX, JAW_OPEN, N_CONTROLLERS
from emoface_core.formats import JsonWriter
from emoface_core.viz.preview import (
    BROW,
    EYE_WHITE,
    MOUTH_INSIDE,
    PUPIL,
    FaceRenderer,
    PreviewError,
    face_shape,
    frame_times,
    write_gif,
    write_mp4,
)

HAS_FFMPEG = shutil.which("ffmpeg") is not None and shutil.which("ffprobe") is not None
needs_ffmpeg = pytest.mark.skipif(not HAS_FFMPEG, reason="ffmpeg/ffprobe not on PATH")


def pose(**channels):
    """A frame with the given channels set (``CTRL_C_jaw__translateY`` style keys)."""
    v = np.zeros(N_CONTROLLERS, np.float32)
    for key, value in channels.items():
        v[CONTROLLER_INDEX[key.replace("__", "-")]] = value
    return v


def both(part, value):
    return {f"CTRL_L_{part}__translateY": value, f"CTRL_R_{part}__translateY": value}


def _mask(img, colour, tol=12):
    a = np.asarray(img, dtype=np.int16)
    return np.all(np.abs(a - np.array(colour)) <= tol, axis=-1)


@pytest.fixture(scope="module")
def renderer():
    return FaceRenderer(256)


def test_jaw_opens_the_mouth(renderer):
    inside = [
        _mask(renderer.render(pose(CTRL_C_jaw__translateY=j)), MOUTH_INSIDE).sum()
        for j in (0.0, 0.3, 0.8)
    ]
    assert inside[0] == 0 and 0 < inside[1] < inside[2]
    gaps = [face_shape(pose(CTRL_C_jaw__translateY=j)).mouth.gap for j in (0.0, 0.3, 0.8)]
    assert gaps[0] == 0 and gaps[0] < gaps[1] < gaps[2]


def test_lips_together_and_purse_against_the_jaw():
    open_ = face_shape(pose(CTRL_C_jaw__translateY=0.5)).mouth
    sealed = face_shape(
        pose(
            CTRL_C_jaw__translateY=0.5,
            **both("mouth_lipsTogetherU", 1),
            **both("mouth_lipsTogetherD", 1),
        )
    ).mouth
    assert sealed.gap < 0.5 * open_.gap
    rest = face_shape(pose()).mouth
    pursed = face_shape(pose(**both("mouth_purseU", 1), **both("mouth_purseD", 1))).mouth
    wide = face_shape(
        pose(
            CTRL_L_mouth_corner__translateX=1,
            CTRL_R_mouth_corner__translateX=1,
            **both("mouth_stretch", 1),
        )
    ).mouth
    assert pursed.width < rest.width < wide.width
    assert pursed.lip_thickness > rest.lip_thickness


def test_corners_follow_smile_and_frown_on_the_right_side():
    rest = face_shape(pose()).mouth
    smile = face_shape(
        pose(
            **both("mouth_cornerPull", 1),
            CTRL_L_mouth_corner__translateY=0.5,
            CTRL_R_mouth_corner__translateY=0.5,
        )
    ).mouth
    frown = face_shape(pose(**both("mouth_cornerDepress", 1))).mouth
    assert smile.left[1] > rest.left[1] > frown.left[1]
    assert smile.right[1] > rest.right[1] > frown.right[1]
    # The character's left corner is on the viewer's right.
    lopsided = face_shape(pose(CTRL_L_mouth_corner__translateY=1)).mouth
    assert lopsided.right[1] > lopsided.left[1] == rest.left[1]


def test_blinks_close_the_eye_on_the_right_side(renderer):
    def white(img, half):
        m = _mask(img, EYE_WHITE)
        return m[:, :128].sum() if half == "viewer_left" else m[:, 128:].sum()

    rest = renderer.render(pose())
    left_blink = renderer.render(pose(CTRL_L_eye_blink__translateY=1))  # character's left eye
    assert white(rest, "viewer_right") > 40
    assert white(left_blink, "viewer_right") < 0.1 * white(rest, "viewer_right")
    assert white(left_blink, "viewer_left") == white(rest, "viewer_left")
    wide = renderer.render(pose(**both("eye_blink", -1)))
    assert white(wide, "viewer_left") > 1.2 * white(rest, "viewer_left")


def test_gaze_moves_the_irises(renderer):
    def iris_centre(img):  # the pupil: the lids cover the iris's top and bottom
        ys, xs = np.nonzero(_mask(img, PUPIL, tol=20))
        return xs.mean(), ys.mean()

    x0, y0 = iris_centre(renderer.render(pose()))
    x_left, _ = iris_centre(renderer.render(pose(CTRL_C_eye__translateX=1)))  # looks to its left
    _, y_up = iris_centre(renderer.render(pose(CTRL_C_eye__translateY=1)))
    assert x_left > x0 + 3  # the character's left is the viewer's right
    assert y_up < y0 - 2  # image y grows downwards


def test_brows_raise_and_lower(renderer):
    def brow_y(img):
        return np.nonzero(_mask(img, BROW, tol=3))[0].mean()  # tight: the outline is close

    rest = brow_y(renderer.render(pose()))
    raised = brow_y(renderer.render(pose(**both("brow_raiseIn", 1), **both("brow_raiseOut", 1))))
    lowered = brow_y(renderer.render(pose(**both("brow_down", 1))))
    assert raised < rest - 5 and lowered > rest + 2


def test_frame_times_resample_without_running_past_the_clip():
    idx = frame_times(60, 60, 25)
    assert idx.shape == (25,) and idx[0] == 0 and np.all(np.diff(idx) > 0) and idx[-1] <= 59
    np.testing.assert_array_equal(frame_times(10, 60, 60), np.arange(10))


def _talking(n=60):
    values = np.zeros((n, N_CONTROLLERS), np.float32)
    values[:, JAW_OPEN] = 0.5 + 0.5 * np.sin(np.arange(n) / 60 * 2 * np.pi * 3)
    return Animation(values, metadata={"emotion": "happy@0"})


def test_gif_frames_timing_and_motion(tmp_path):
    from PIL import Image

    path = write_gif(_talking(), tmp_path / "p.gif", size_px=128)
    with Image.open(path) as im:
        assert im.info["loop"] == 0
        durations, frames = [], []
        for k in range(im.n_frames):  # Pillow merges identical neighbours, adding their delays
            im.seek(k)
            durations.append(im.info["duration"])
            frames.append(np.asarray(im.convert("RGB"), dtype=np.int16))
    assert sum(durations) == 1000 and set(durations) <= {40, 80, 120}
    assert np.abs(frames[0] - frames[2]).sum() > 0  # the mouth moved
    assert not list(tmp_path.glob(".*.part"))
    with pytest.raises(ValueError, match="GIF fps must be"):
        write_gif(_talking(), tmp_path / "q.gif", fps=30)


def _probe(path):
    out = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-of",
            "json",
            "-show_entries",
            "format=duration",
            "-show_entries",
            "stream=codec_type,codec_name,nb_frames,r_frame_rate",
            str(path),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout)


@needs_ffmpeg
def test_mp4_with_muxed_audio(tmp_path):
    wav = write_wav(tmp_path / "clip.wav", make_sine(1.0))
    path = write_mp4(_talking(), tmp_path / "p.mp4", audio_path=wav, size_px=128)
    info = _probe(path)
    kinds = {s["codec_type"]: s for s in info["streams"]}
    assert set(kinds) == {"video", "audio"}
    assert kinds["video"]["r_frame_rate"] == "60/1" and int(kinds["video"]["nb_frames"]) == 60
    assert kinds["audio"]["codec_name"] == "aac"
    assert float(info["format"]["duration"]) == pytest.approx(1.0, abs=0.05)
    silent = _probe(write_mp4(_talking(), tmp_path / "s.mp4", size_px=128, fps=30))
    assert [s["codec_type"] for s in silent["streams"]] == ["video"]
    assert not list(tmp_path.glob(".*.part"))


@needs_ffmpeg
def test_mp4_failure_leaves_nothing_behind(tmp_path):
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"not audio at all")
    with pytest.raises(PreviewError, match=r"p.mp4: ffmpeg"):
        write_mp4(_talking(), tmp_path / "p.mp4", audio_path=junk, size_px=128)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["junk.wav"]


def test_mp4_without_ffmpeg_says_so(tmp_path, monkeypatch):
    monkeypatch.delenv("EMOFACE_FFMPEG", raising=False)
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(PreviewError, match="needs ffmpeg .not found on PATH.: install it"):
        write_mp4(_talking(), tmp_path / "p.mp4")
    monkeypatch.setenv("EMOFACE_FFMPEG", str(tmp_path / "no-such-ffmpeg"))
    with pytest.raises(PreviewError, match="cannot run ffmpeg"):
        write_mp4(_talking(), tmp_path / "p.mp4")
    assert not list(tmp_path.iterdir())


def test_cli_gif_and_errors(tmp_path, capsys):
    anim = _talking()
    baked = JsonWriter().write(anim, tmp_path / "line.json")
    assert main(["preview", str(baked), "-o", str(tmp_path / "p.gif"), "--size", "96"]) == 0
    assert (tmp_path / "p.gif").is_file()
    capsys.readouterr()
    assert main(["preview", str(baked), "-o", str(tmp_path / "p.avi")]) == 1
    err = capsys.readouterr().err
    assert "unknown preview extension .avi" in err and "Traceback" not in err
    assert (
        main(
            [
                "preview",
                str(baked),
                "-o",
                str(tmp_path / "p.mp4"),
                "--audio",
                str(tmp_path / "missing.wav"),
            ]
        )
        == 1
    )
    assert "missing.wav: no such audio file" in capsys.readouterr().err


@pytest.mark.parametrize("flag, value", [("--fps", "0"), ("--fps", "-5"), ("--size", "0")])
def test_cli_rejects_non_positive_fps_and_size(tmp_path, capsys, flag, value):
    # 0 used to fall back silently to the default, and a negative fps to a cryptic ffmpeg error.
    baked = JsonWriter().write(_talking(), tmp_path / "line.json")
    with pytest.raises(SystemExit) as exit_info:
        main(["preview", str(baked), "-o", str(tmp_path / "p.gif"), flag, value])
    assert exit_info.value.code == 2
    assert f"argument {flag}" in capsys.readouterr().err
    assert not (tmp_path / "p.gif").exists()


@needs_ffmpeg
def test_cli_mp4_uses_the_bakes_source_audio(tmp_path, capsys):
    wav = write_wav(tmp_path / "clip.wav", make_sine(1.0))
    anim = _talking()
    anim.metadata["source_audio"] = str(wav)
    baked = JsonWriter().write(anim, tmp_path / "line.json")
    out = tmp_path / "p.mp4"
    assert main(["preview", str(baked), "-o", str(out), "--size", "128"]) == 0
    assert "with sound" in capsys.readouterr().err
    assert {s["codec_type"] for s in _probe(out)["streams"]} == {"video", "audio"}


def test_contact_sheet_captions_and_progress(tmp_path):
    from PIL import Image

    from emoface_core.viz.preview import emotion_caption, render_frames, write_sheet

    animation = _talking(180)
    animation.metadata["emotion"] = "happy@0,sad@1"
    caption = emotion_caption(animation)
    assert caption(0.1) == "happy" and caption(animation.duration_s - 0.01) == "sad"
    assert "%" in caption(1.05)  # mid-fade: a blend of two
    path = write_sheet(animation, tmp_path / "s.png", every_ms=250, columns=4, caption=caption)
    n_tiles = -(-animation.n_frames // 15)  # a frame every 15 at 60 fps
    with Image.open(path) as im:
        assert im.size == (4 * 192, -(-n_tiles // 4) * 192)
    seen = []
    list(render_frames(animation, 25, 128, progress=lambda done, total: seen.append((done, total))))
    assert seen[-1][0] == seen[-1][1] == len(seen)


def test_preview_finds_the_audio_beside_an_older_bake_and_says_when_it_cannot(tmp_path, capsys):
    from bridge.cli import main
    from emoface_core.formats import JsonWriter

    animation = _talking()
    animation.metadata["source_audio"] = "line.wav"  # recorded relative by an older bake
    JsonWriter().write(animation, tmp_path / "line.json")
    code = main(["preview", str(tmp_path / "line.json"), "-o", str(tmp_path / "a.gif"), "-q"])
    assert code == 0 and "not found" not in capsys.readouterr().err  # a GIF has no sound anyway
    code = main(["preview", str(tmp_path / "line.json"), "-o", str(tmp_path / "s.png")])
    assert code == 0 and "contact sheet" in capsys.readouterr().err


def _emotion_faces():
    from emoface_core.audio import Audio
    from emoface_core.emotion import EMOTIONS, EmotionTimeline
    from emoface_core.engines.procedural.engine import ProceduralEngine
    from emoface_core.viz.preview import face_shape

    engine = ProceduralEngine()
    silence = Audio(np.zeros(32_000, np.float32))
    values = {e: engine.infer(silence, EmotionTimeline.constant(e)).mean(axis=0) for e in EMOTIONS}
    return values, {e: face_shape(v) for e, v in values.items()}


def _features(shape) -> np.ndarray:
    m = shape.mouth
    return np.array(
        [
            shape.brow_left.inner_up,
            shape.brow_left.outer_up,
            shape.brow_left.inner_shift,
            shape.eye_left.upper_open,
            shape.eye_left.lower_open,
            m.left[1],
            m.width,
            m.upper_lip_y,
            m.gap,
            0.05 * m.lip_thickness,
            0.05 * shape.nose_wrinkle,
            0.05 * shape.cheek_raise_left,
            0.05 * shape.nasolabial,
        ]
    )


def test_each_emotion_draws_its_own_face():
    values, faces = _emotion_faces()
    n = faces["neutral"]
    angry, disgust, fear = faces["angry"], faces["disgust"], faces["fear"]
    happy, sad, surprise = faces["happy"], faces["sad"], faces["surprise"]
    # Each moves the features its name says, against neutral.
    assert angry.brow_left.inner_up < n.brow_left.inner_up - 0.05  # brows pulled down...
    assert angry.brow_left.inner_shift > n.brow_left.inner_shift + 0.03  # ...and together
    assert angry.eye_left.lower_open < n.eye_left.lower_open - 0.01  # a squint
    assert angry.mouth.lip_thickness < n.mouth.lip_thickness - 0.15  # tightened lips
    assert disgust.nose_wrinkle > 0.5 and disgust.nasolabial > 0.2
    assert disgust.mouth.upper_lip_y > n.mouth.upper_lip_y + 0.02  # upper lip raised
    assert fear.brow_left.inner_up > n.brow_left.inner_up + 0.05
    assert fear.eye_left.upper_open > n.eye_left.upper_open + 0.01  # eyes widened
    assert fear.mouth.width > n.mouth.width + 0.03  # mouth stretched
    assert happy.mouth.left[1] > n.mouth.left[1] + 0.05 and happy.cheek_raise_left > 0.3
    assert happy.eye_left.lower_open < n.eye_left.lower_open - 0.01  # cheeks push the lids
    assert sad.brow_left.inner_up - sad.brow_left.outer_up > 0.05  # inner ends up
    assert sad.mouth.left[1] < n.mouth.left[1] - 0.04  # corners down
    assert surprise.brow_left.outer_up > n.brow_left.outer_up + 0.08
    assert surprise.eye_left.upper_open > n.eye_left.upper_open + 0.01 and surprise.mouth.gap > 0
    # And every pair is told apart by a clear margin, in the shapes and in the pixels.
    from itertools import combinations

    from emoface_core.viz.preview import FaceRenderer

    renderer = FaceRenderer(192)
    pixels = {e: np.asarray(renderer.render(v).convert("L"), np.float32) for e, v in values.items()}
    for a, b in combinations(faces, 2):
        assert np.linalg.norm(_features(faces[a]) - _features(faces[b])) > 0.03, (a, b)
        assert np.abs(pixels[a] - pixels[b]).mean() > 0.6, (a, b)
