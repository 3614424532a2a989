import numpy as np
import pytest

from emoface_core.emotion import EMOTIONS, NEUTRAL, EmotionTimeline, emotion_id, parse_emotion_spec
from emoface_core.errors import EmotionSpecError


def test_ids_match_release():
    assert [
        emotion_id(n) for n in ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")
    ] == list(range(7))
    assert [emotion_id(p) for p in ("ang", "dis", "fea", "hap", "neu", "sad", "sur")] == list(
        range(7)
    )
    assert emotion_id("3") == 3 and emotion_id("HAPPY") == 3


def test_constant_spec_is_one_hot():
    w = parse_emotion_spec("happy").weights(10)
    assert w.shape == (10, 7)
    assert np.all(w[:, 3] == 1) and np.all(w.sum(1) == 1)


def test_intensity_blends_with_neutral():
    w = parse_emotion_spec("sad:0.25").weights(4)
    np.testing.assert_allclose(w[:, EMOTIONS.index("sad")], 0.25)
    np.testing.assert_allclose(w[:, NEUTRAL], 0.75)


def test_timeline_switches_with_crossfade():
    tl = parse_emotion_spec("happy@0,sad@2.5", fade_s=0.5)
    w = tl.weights(300)  # 5 s at 60 fps
    happy, sad = EMOTIONS.index("happy"), EMOTIONS.index("sad")
    assert w[int(2.2 * 60), happy] == 1 and w[int(2.8 * 60), sad] == 1
    mid = w[150]
    assert 0.4 < mid[happy] < 0.6 and abs(mid.sum() - 1) < 1e-6
    assert np.all(np.diff(w[120:180, sad]) >= 0)  # monotonic fade
    # streaming blocks agree with the whole
    np.testing.assert_array_equal(tl.weights(100, start_frame=120), w[120:220])


def test_round_trip_and_json():
    tl = parse_emotion_spec("happy:0.6@0, surprise@1.5")
    assert parse_emotion_spec(tl.to_spec()) == tl
    assert tl.to_json()[1] == {"emotion": "surprise", "intensity": 1.0, "start_s": 1.5}


@pytest.mark.parametrize(
    "spec, fragment",
    [
        ("", "empty"),
        ("grumpy", "unknown emotion 'grumpy'"),
        ("happy:2", "within 0..1"),
        ("happy@1,sad@0.5", "must increase"),
        ("happy,sad", "needs a start time"),
        ("happy@x", "EMOTION[:INTENSITY][@SECONDS]"),
        ("9", "unknown emotion"),
    ],
)
def test_bad_specs(spec, fragment):
    with pytest.raises(EmotionSpecError, match=fragment.replace("[", r"\[").replace("]", r"\]")):
        parse_emotion_spec(spec)


def test_constant_helper():
    assert EmotionTimeline.constant("fear", 0.5).segments[0].intensity == 0.5
