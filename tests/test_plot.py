"""emoface plot: the panels show the right channels, the emotion timeline and the audio envelope."""

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from bridge.cli import main
from emoface_core.animation import Animation
from emoface_core.controllers import BLINK_L, JAW_OPEN, N_CONTROLLERS
from emoface_core.formats import JsonWriter, TxtWriter
from emoface_core.viz.plot import (
    PANELS,
    PlotInputs,
    audio_envelope,
    build_figure,
    timeline_of,
)


def _animation(n=120, emotion="happy@0,sad@1"):
    values = np.zeros((n, N_CONTROLLERS), np.float32)
    t = np.arange(n) / 60
    values[:, JAW_OPEN] = 0.5 + 0.5 * np.sin(2 * np.pi * 2 * t)
    values[50:60, BLINK_L] = 1.0
    return Animation(values, metadata={"emotion": emotion, "engine": {"name": "fake"}})


def _lines_by_label(ax):
    labels = [text.get_text() for text in ax.get_legend().get_texts()]
    return dict(zip(labels, ax.get_lines()))


def test_panels_plot_the_channels_they_name():
    anim = _animation()
    fig = build_figure(anim, PlotInputs(emotion=timeline_of(anim)))
    axes = fig.axes
    assert [ax.get_ylabel() for ax in axes] == [title for title, _ in PANELS] + ["emotion"]
    jaw = _lines_by_label(axes[0])["open"]
    np.testing.assert_allclose(jaw.get_ydata(), anim.values[:, JAW_OPEN])
    np.testing.assert_allclose(jaw.get_xdata()[:3], [0, 1 / 60, 2 / 60])
    blink = _lines_by_label(axes[4])["blink L"]
    assert blink.get_ydata()[55] == 1.0 and blink.get_ydata()[10] == 0.0
    assert "fake" in fig._suptitle.get_text() and "happy@0,sad@1" in fig._suptitle.get_text()


def test_emotion_panel_stacks_the_timeline_weights():
    anim = _animation()
    fig = build_figure(anim, PlotInputs(emotion=timeline_of(anim)))
    emotion_ax = fig.axes[-1]
    assert [t.get_text() for t in emotion_ax.get_legend().get_texts()] == ["happy", "sad"]
    # The top of the stack is 1 everywhere: the weights of a timeline sum to one.
    top = emotion_ax.collections[-1].get_paths()[0].vertices[:, 1]
    assert top.max() == pytest.approx(1.0, abs=1e-5)
    # Overriding the spec (e.g. for a .txt bake) changes what is drawn.
    fig = build_figure(anim, PlotInputs(emotion=timeline_of(anim, "angry")))
    assert [t.get_text() for t in fig.axes[-1].get_legend().get_texts()] == ["angry"]


def test_unknown_emotion_and_audio_envelope_panel():
    anim = _animation(emotion="")
    assert timeline_of(anim) is None
    env = np.linspace(0, 1, anim.n_frames)
    fig = build_figure(anim, PlotInputs(emotion=None, audio_envelope=env))
    assert fig.axes[0].get_ylabel() == "audio" and len(fig.axes) == len(PANELS) + 2
    assert "emotion unknown" in fig.axes[-1].texts[0].get_text()


def test_audio_envelope_follows_loudness():
    sr = 16_000
    quiet_then_loud = np.concatenate([0.01 * np.ones(sr // 2), 0.8 * np.ones(sr // 2)])
    env = audio_envelope(quiet_then_loud, sr, n_frames=60, fps=60)
    assert env.shape == (60,) and env.max() == pytest.approx(1.0)
    assert env[:25].max() < 0.05 and env[35:].min() > 0.95


def test_cli_plots_json_and_txt(tmp_path, capsys):
    from PIL import Image

    anim = _animation()
    baked = JsonWriter().write(anim, tmp_path / "line.json")
    assert main(["plot", str(baked), "-o", str(tmp_path / "line.png")]) == 0
    with Image.open(tmp_path / "line.png") as im:
        assert im.format == "PNG" and im.width > 1000 and im.height > 1000
    txt = TxtWriter().write(anim, tmp_path / "line.txt")
    assert main(["plot", str(txt), "-o", str(tmp_path / "line.svg"), "--emotion", "sad"]) == 0
    svg = (tmp_path / "line.svg").read_text()
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg


def test_cli_errors_are_one_line(tmp_path, capsys):
    baked = JsonWriter().write(_animation(), tmp_path / "line.json")
    assert main(["plot", str(baked), "-o", str(tmp_path / "line.bmp")]) == 1
    err = capsys.readouterr().err
    assert "unknown plot extension .bmp" in err and "Traceback" not in err
    assert not (tmp_path / "line.bmp").exists()
    (tmp_path / "bad.json").write_text('{"format": "something else"}')
    assert main(["plot", str(tmp_path / "bad.json"), "-o", str(tmp_path / "x.png")]) == 1
    assert "bad.json: not an EmoFace animation file" in capsys.readouterr().err
    assert main(["plot", str(baked), "-o", str(tmp_path / "x.png"), "--emotion", "grumpy"]) == 1
    assert "unknown emotion 'grumpy'" in capsys.readouterr().err


def test_cli_draws_the_source_audio_envelope(tmp_path):
    from conftest import make_sine, write_wav

    wav = write_wav(tmp_path / "clip.wav", make_sine(1.0))
    anim = _animation(n=60)
    anim.metadata["source_audio"] = str(wav)
    baked = JsonWriter().write(anim, tmp_path / "line.json")
    assert main(["plot", str(baked), "-o", str(tmp_path / "a.png")]) == 0
    assert main(["plot", str(baked), "-o", str(tmp_path / "b.png"), "--no-audio"]) == 0
    from PIL import Image

    with Image.open(tmp_path / "a.png") as a, Image.open(tmp_path / "b.png") as b:
        assert a.height > b.height  # the extra audio panel


def test_a_tiny_wiggle_does_not_fill_its_panel():
    from emoface_core.viz.plot import PANELS, build_figure

    values = np.zeros((120, N_CONTROLLERS), np.float32)
    values[:, BLINK_L] = 0.0002 * np.sin(np.arange(120))
    fig = build_figure(Animation(values))
    blinks = fig.axes[[title for title, _ in PANELS].index("blinks")]
    lo, hi = blinks.get_ylim()
    assert hi - lo > 1.0  # the blink panel keeps its working range
