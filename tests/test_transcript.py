"""Lip sync from a line's text (issue 15): phoneme classes, DTW, alignment, the lip layer,
the audio-only v3 closures, and the text through the CLI, manifests and the service."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bridge.transcript import espeak
from emoface_core.animate import animate_audio
from emoface_core.audio import FPS, SAMPLE_RATE, Audio
from emoface_core.controllers import CONTROLLER_INDEX
from emoface_core.emotion import EmotionTimeline
from emoface_core.engines.procedural.engine import ProceduralEngine
from emoface_core.transcript.align import align, dtw_path
from emoface_core.transcript.lips import apply_lip_layer
from emoface_core.transcript.phonemes import Lips, Phoneme, lips_of, openness
from emoface_core.viz.preview import face_shape

needs_espeak = pytest.mark.skipif(
    not espeak.available(), reason="espeak-ng is not installed (apt-get install espeak-ng)"
)
SENTENCE = "Bob made a very big map of five rooms."
OTHER = "Tina sat down in the shade near the tall tree."
JAW = CONTROLLER_INDEX["CTRL_C_jaw-translateY"]
TEETH = CONTROLLER_INDEX["CTRL_L_mouth_lipsTowardsTeethD-translateY"]
PURSE = CONTROLLER_INDEX["CTRL_L_mouth_purseU-translateY"]


def test_phoneme_classes():
    assert [lips_of(s) for s in ("p", "ˈb", "m", "f", "v")] == [Lips.CLOSED] * 3 + [
        Lips.LABIODENTAL
    ] * 2
    # Front rounded vowels round (what audio alone reads as spread), i and e spread.
    assert lips_of("yː") is lips_of("ø") is lips_of("uː") is Lips.ROUNDED
    assert lips_of("iː") is lips_of("e") is Lips.SPREAD
    assert lips_of("t") is lips_of("s") is lips_of("aɪ") is Lips.FREE
    assert openness("ˈa") > openness("e") > openness("iː") > openness("t") > openness("_") == 0


def test_dtw_recovers_a_known_warp():
    rng = np.random.default_rng(0)
    template = rng.standard_normal((60, 4))
    stretch = np.repeat(np.arange(60), 2)[:100]  # the recording says the first 50 frames slower
    recording = template[stretch] + 0.05 * rng.standard_normal((100, 4))
    cost = np.linalg.norm(recording[:, None, :] - template[None, :50, :], axis=2)
    rows, cols = dtw_path(cost, band=40)
    assert rows[0] == cols[0] == 0 and rows[-1] == 99 and cols[-1] == 49
    assert np.all(np.diff(rows) >= 0) and np.all(np.diff(cols) >= 0)
    assert np.abs(cols - stretch[rows]).max() <= 1


def _gap(values: np.ndarray) -> np.ndarray:
    return np.array([face_shape(v).mouth.gap for v in values])


def _speech(text: str, rate: int, pitch: int = 50) -> tuple[np.ndarray, tuple[Phoneme, ...]]:
    speech = espeak.synthesize(text, "en", rate_wpm=rate, pitch=pitch)
    pad = np.zeros(int(0.3 * SAMPLE_RATE), np.float32)
    phonemes = tuple(Phoneme(p.symbol, p.start_s + 0.3, p.end_s + 0.3) for p in speech.phonemes)
    return np.concatenate([pad, speech.samples, pad]), phonemes


def _closed_share(values: np.ndarray, phonemes: tuple[Phoneme, ...]) -> float:
    """Share of bilabials whose lips close (gap under a quarter of open vowels' median)."""
    gap = _gap(values)
    n = len(values)
    opens = [
        gap[min(n - 1, int((p.start_s + p.end_s) / 2 * FPS))]
        for p in phonemes
        if openness(p.symbol) == 1.0
    ]
    threshold = 0.25 * float(np.median(opens))
    bilabials = [p for p in phonemes if lips_of(p.symbol) is Lips.CLOSED]
    closed = [
        gap[int(p.start_s * FPS) : int(np.ceil(p.end_s * FPS)) + 1].min() < threshold
        for p in bilabials
    ]
    return float(np.mean(closed))


@needs_espeak
def test_alignment_maps_phoneme_times_onto_a_slower_voice():
    samples, truth = _speech(SENTENCE, rate=130, pitch=30)
    alignment = align(samples, espeak.template(SENTENCE, "en"))
    assert len(alignment.phonemes) == len(truth) and alignment.ratio < 0.5
    errors = [abs(a.start_s - t.start_s) for a, t in zip(alignment.phonemes, truth)]
    assert np.median(errors) < 0.02 and np.percentile(errors, 90) < 0.05
    assert min(alignment.confidence) > 0.9 and alignment.fallback_spans_s() == []


@needs_espeak
def test_a_line_with_its_text_closes_on_every_bilabial_and_shapes_f_v():
    samples, truth = _speech(SENTENCE, rate=150, pitch=40)
    engine = ProceduralEngine()
    timeline = EmotionTimeline.constant("neutral")
    audio = Audio(samples)
    plain = animate_audio(engine, audio, timeline, seed=3, head=0.0)
    tpl = espeak.template(SENTENCE, "en")
    texted = animate_audio(engine, audio, timeline, seed=3, head=0.0, transcript=tpl)
    assert _closed_share(texted.values, truth) == 1.0
    # Audio-only v3 closes most of them too (v2 closed under a tenth).
    assert _closed_share(plain.values, truth) >= 0.5
    for p in truth:
        if lips_of(p.symbol) is Lips.LABIODENTAL:
            span = slice(int(p.start_s * FPS), int(np.ceil(p.end_s * FPS)) + 1)
            assert texted.values[span, TEETH].max() > 0.3 and texted.values[span, JAW].min() < 0.1
    facts = texted.metadata["transcript"]
    assert facts["used"] and facts["aligned_share"] == 1.0 and facts["text"] == SENTENCE
    # Determinism: the same line, text and seed give the same frames.
    again = animate_audio(engine, audio, timeline, seed=3, head=0.0, transcript=tpl)
    np.testing.assert_array_equal(again.values, texted.values)


@needs_espeak
def test_a_text_the_audio_does_not_say_falls_back_to_the_audio():
    samples, _ = _speech(SENTENCE, rate=160)
    engine = ProceduralEngine()
    timeline = EmotionTimeline.constant("neutral")
    plain = animate_audio(engine, Audio(samples), timeline, seed=0, head=0.0)
    wrong = animate_audio(
        engine, Audio(samples), timeline, seed=0, head=0.0, transcript=espeak.template(OTHER)
    )
    facts = wrong.metadata["transcript"]
    assert facts["aligned_share"] < 0.2 and facts["fallback_s"] and facts["match_ratio"] > 0.93
    # Where the alignment is not trusted the lip layer leaves the audio-only frames as they are.
    alignment = align(samples, espeak.template(OTHER))
    out = apply_lip_layer(plain.values, alignment, samples, "full")
    inside = np.zeros(len(out), bool)
    for a, b in alignment.fallback_spans_s():
        inside[int(a * FPS) : int(b * FPS)] = True
    assert inside.mean() > 0.5
    np.testing.assert_array_equal(out[inside], plain.values[inside])


@needs_espeak
def test_the_network_layer_enforces_closures_and_f_v_only():
    samples, truth = _speech(SENTENCE, rate=150)
    alignment = align(samples, espeak.template(SENTENCE))
    n = int(len(samples) / SAMPLE_RATE * FPS)
    values = np.zeros((n, 174), np.float32)
    values[:, JAW] = 0.4  # a network that keeps the jaw open throughout
    out = apply_lip_layer(values, alignment, samples, "lips")
    inside = [p for p in alignment.phonemes if lips_of(p.symbol) is Lips.CLOSED]
    for p in inside:
        middle = int((p.start_s + p.end_s) / 2 * FPS)
        assert out[middle, JAW] < 0.05
    rounded = [p for p in alignment.phonemes if lips_of(p.symbol) is Lips.ROUNDED]
    assert rounded and all(out[int(p.start_s * FPS), PURSE] == 0.0 for p in rounded)
    # Away from the lip phonemes the network's jaw is untouched.
    from emoface_core.transcript.lips import action_tracks

    tracks = action_tracks(alignment, n, samples)
    free = (tracks["closed"] == 0) & (tracks["labiodental"] == 0)
    assert np.isfinite(out).all() and free.mean() > 0.3
    np.testing.assert_array_equal(out[free, JAW], np.float32(0.4))


def test_espeak_missing_is_one_clear_line(monkeypatch):
    monkeypatch.setattr(espeak, "_LIBRARY", None)
    monkeypatch.setenv(espeak.LIBRARY_ENV, "/nonexistent/libespeak-ng.so")
    monkeypatch.setattr(espeak.ctypes.util, "find_library", lambda name: None)
    monkeypatch.setattr(espeak, "_LIBRARY_NAMES", ())
    with pytest.raises(espeak.EspeakError, match="apt-get install espeak-ng"):
        espeak.template("hello")


def test_cli_text_modes_without_espeak(monkeypatch, tmp_path, capsys, caplog):
    from conftest import make_sine, write_wav

    from bridge.cli import main

    wav = write_wav(tmp_path / "a.wav", make_sine(1.0, amplitude=0.3))
    monkeypatch.setattr(espeak, "_LIBRARY", None)
    monkeypatch.setenv(espeak.LIBRARY_ENV, "/nonexistent/libespeak-ng.so")
    monkeypatch.setattr(espeak.ctypes.util, "find_library", lambda name: None)
    monkeypatch.setattr(espeak, "_LIBRARY_NAMES", ())
    out = tmp_path / "a.json"
    assert main(["bake", str(wav), "--text", "hello", "-o", str(out)]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) <= 2 and "espeak-ng" in err[-1] and "Traceback" not in "".join(err)
    assert not out.exists()
    assert main(["bake", str(wav), "--text", "hello", "--text-mode", "prefer", "-o", str(out)]) == 0
    assert out.exists() and "audio-only lips" in caplog.text


@needs_espeak
def test_cli_text_file_and_json_summary(tmp_path, capsys):
    from bridge.cli import main

    samples, _ = _speech(SENTENCE, rate=170)
    import soundfile as sf

    sf.write(tmp_path / "line.wav", samples, SAMPLE_RATE)
    (tmp_path / "line.txt").write_text(SENTENCE + "\n", encoding="utf-8")
    out = tmp_path / "line.json"
    args = ["bake", str(tmp_path / "line.wav"), "--text-file", str(tmp_path / "line.txt")]
    assert main([*args, "-o", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["transcript"]["used"] and summary["transcript"]["aligned_share"] > 0.9
    assert json.loads(out.read_text())["metadata"]["transcript"]["text"] == SENTENCE
    assert main([*args, "--text", "x", "-o", str(out)]) != 0  # not both
    assert "not both" in capsys.readouterr().err


@needs_espeak
def test_manifest_text_column_drives_the_lips_and_the_fingerprint(tmp_path):
    from bridge.bake.lines import load_manifest
    from bridge.bake.render import BatchSettings
    from bridge.bake.run import run_batch

    samples, _ = _speech(SENTENCE, rate=170)
    import soundfile as sf

    sf.write(tmp_path / "a.wav", samples, SAMPLE_RATE)
    manifest = tmp_path / "lines.csv"
    manifest.write_text(
        f'audio,text,language,output\na.wav,"{SENTENCE}",en,with_text\n'
        "a.wav,,,without\n"
        'a.wav,"hola",xx yy,bad_language\n',
        encoding="utf-8",
    )
    lines = load_manifest(manifest)
    assert (
        lines[0].text == SENTENCE and lines[1].text == "" and "espeak-ng code" in lines[2].problem
    )
    settings = BatchSettings(output_dir=tmp_path / "out", engine="procedural")
    report = run_batch(lines, settings)
    assert report.count("failed") == 1
    from bridge.bake.run import iter_summary_rows

    facts = {r.line.output: r.transcript for r in report.results}
    assert facts["with_text"]["aligned_share"] > 0.9 and facts["without"] is None
    rows = {status: (n, note) for status, n, note in iter_summary_rows(report)}
    assert rows["with text"] == (1, "0 with audio-only stretches, 0 not aligned (see --report)")
    assert report.to_json()["lines"][0]["transcript"]["text"] == SENTENCE
    doc = json.loads((tmp_path / "out" / "with_text.json").read_text())
    assert doc["metadata"]["transcript"]["aligned_share"] > 0.9
    assert (
        "transcript" not in json.loads((tmp_path / "out" / "without.json").read_text())["metadata"]
    )
    # A new text re-bakes its line; the others stay up to date.
    manifest.write_text(
        f'audio,text,output\na.wav,"{OTHER}",with_text\na.wav,,without\n', encoding="utf-8"
    )
    again = run_batch(load_manifest(manifest), settings)
    assert again.count("done") == 1 and again.count("skipped") == 1


@needs_espeak
def test_the_service_bakes_and_speaks_with_a_text(tmp_path, monkeypatch):
    pytest.importorskip("zmq")
    import soundfile as sf

    from bridge.receiver import MockReceiver
    from bridge.service.client import ServiceClient, ServiceError
    from bridge.service.server import Service, ServiceConfig

    monkeypatch.chdir(tmp_path)  # the service's audio and output roots
    samples, _ = _speech(SENTENCE, rate=170)
    sf.write(tmp_path / "line.wav", samples, SAMPLE_RATE)
    config = ServiceConfig(bind="tcp://127.0.0.1:*", zmq="tcp://127.0.0.1:*")
    with Service(config, ProceduralEngine()) as service:
        service.serve_in_thread()
        with (
            MockReceiver("zmq", service.senders[0].address) as rx,
            ServiceClient(service.endpoint, timeout_s=20.0) as client,
        ):
            reply = client.bake(tmp_path / "line.wav", text=SENTENCE, language="en")
            facts = reply["transcript"]
            assert facts["used"] and facts["aligned_share"] > 0.9
            assert reply["animation"]["metadata"]["transcript"]["text"] == SENTENCE
            assert "transcript" not in client.bake(tmp_path / "line.wav")
            for bad, message in (
                ({"language": "en us"}, "language must be"),
                ({"text": "x" * 5000}, "at most 4000"),
                ({"text": 7}, "text must be a string"),
            ):
                with pytest.raises(ServiceError, match=message) as failure:
                    client.request("bake", audio=str(tmp_path / "line.wav"), **bad)
                assert failure.value.code == "bad_request"
            line = client.speak("guard", tmp_path / "line.wav", text=SENTENCE)
            assert client.wait(line["id"], 20.0)["state"] == "finished"
            assert rx.wait_until(lambda: len(rx.ends) >= 1, 20.0)


@needs_espeak
def test_mandarin_hanzi_and_pinyin_give_the_same_mandarin_phonemes():
    hanzi = espeak.template("你好，我今天很高兴见到你。", "cmn")
    pinyin = espeak.template("ni3 hao3, wo3 jin1 tian1 hen3 gao1 xing4 jian4 dao4 ni3.", "cmn")
    symbols = [p.symbol for p in hanzi.phonemes]
    assert symbols == [p.symbol for p in pinyin.phonemes]
    assert "θ" not in "".join(symbols)  # not read as English ("ni three")
    assert any(lips_of(s) is Lips.ROUNDED for s in symbols)  # wo3


@needs_espeak
def test_templates_do_not_depend_on_what_was_spoken_before():
    first = espeak.template(SENTENCE)
    espeak.synthesize("Über München fährt ein blauer Bus.", "de", rate_wpm=140, pitch=30)
    again = espeak.template(SENTENCE)
    np.testing.assert_array_equal(first.samples, again.samples)
    assert first.phonemes == again.phonemes


@needs_espeak
def test_recognised_phones_drive_the_lips_without_a_text(tmp_path):
    pytest.importorskip("pocketsphinx")
    from bridge.transcript.phones import recognise

    samples, truth = _speech(SENTENCE, rate=150, pitch=40)
    alignment = recognise(samples)
    assert alignment.phonemes and all(c == 1.0 for c in alignment.confidence)
    assert any(lips_of(p.symbol) is Lips.CLOSED for p in alignment.phonemes)
    engine = ProceduralEngine()
    timeline = EmotionTimeline.constant("neutral")
    plain = animate_audio(engine, Audio(samples), timeline, seed=1, head=0.0)
    heard = animate_audio(engine, Audio(samples), timeline, seed=1, head=0.0, transcript=alignment)
    assert heard.metadata["transcript"]["language"] == "phones:en-us"
    assert _closed_share(heard.values, truth) >= _closed_share(plain.values, truth)
    assert not np.array_equal(heard.values, plain.values)


def test_phones_without_pocketsphinx_is_one_clear_line(monkeypatch):
    import sys

    from bridge.transcript import phones

    monkeypatch.setattr(phones, "_DECODER", None)
    monkeypatch.setitem(sys.modules, "pocketsphinx", None)  # import fails
    with pytest.raises(phones.PhonesError, match=r"emoface\[phones\]"):
        phones.recognise(np.zeros(16000, np.float32))


def test_the_service_says_unavailable_without_espeak(monkeypatch):
    from bridge.service.jobs import BakeJob, run_bake
    from bridge.service.requests import AudioRef

    monkeypatch.setattr(espeak, "_LIBRARY", None)
    monkeypatch.setenv(espeak.LIBRARY_ENV, "/nonexistent/libespeak-ng.so")
    monkeypatch.setattr(espeak.ctypes.util, "find_library", lambda name: None)
    monkeypatch.setattr(espeak, "_LIBRARY_NAMES", ())

    class Ref(AudioRef):
        def load(self):
            return Audio(np.zeros(SAMPLE_RATE, np.float32))

        def discard(self):
            pass

    job = BakeJob(
        Ref(None, "x.wav", SAMPLE_RATE, SAMPLE_RATE),
        EmotionTimeline.constant("neutral"),
        None,
        False,
        "json",
        None,
        None,
        text="hello",
    )
    reply = run_bake(job, ProceduralEngine())
    assert reply["ok"] is False and reply["error"]["code"] == "unavailable"
    assert "apt-get install espeak-ng" in reply["error"]["message"]


@needs_espeak
def test_silence_or_steady_noise_with_a_text_is_left_to_the_audio():
    engine = ProceduralEngine()
    timeline = EmotionTimeline.constant("neutral")
    noise = (0.01 * np.random.default_rng(0).standard_normal(2 * SAMPLE_RATE)).astype(np.float32)
    for samples in (np.zeros(2 * SAMPLE_RATE, np.float32), noise):
        plain = animate_audio(engine, Audio(samples), timeline, seed=0, head=0.0)
        texted = animate_audio(
            engine, Audio(samples), timeline, seed=0, head=0.0, transcript=espeak.template(SENTENCE)
        )
        facts = texted.metadata["transcript"]
        assert facts["used"] is False and "no speech" in facts["reason"]
        np.testing.assert_array_equal(texted.values, plain.values)


@needs_espeak
def test_stream_takes_a_text_too(tmp_path):
    import soundfile as sf

    from bridge.cli import main
    from bridge.receiver import MockReceiver

    samples, truth = _speech(SENTENCE, rate=160)
    sf.write(tmp_path / "line.wav", samples, SAMPLE_RATE)
    with MockReceiver("livelink", "127.0.0.1:0") as rx:
        args = ["stream", str(tmp_path / "line.wav"), "--engine", "procedural", "--seed", "1"]
        rc = main([*args, "--text", SENTENCE, "--livelink", f"127.0.0.1:{rx.port}",
                   "--no-realtime", "--start-delay-s", "0.2"])  # fmt: skip
        assert rc == 0
        n = Audio(samples).n_frames
        assert rx.wait_for(n, 10.0), rx.stats
    jaw = np.array([f.named()["JawOpen"] for f in rx.frames[:n]])
    for p in truth:  # the text's closures reach the wire: the jaw shuts on every bilabial
        if lips_of(p.symbol) is Lips.CLOSED:
            middle = int((p.start_s + p.end_s) / 2 * FPS)
            assert jaw[middle] < 0.05, (p.symbol, p.start_s)


@needs_espeak
def test_bad_text_inputs_are_one_clear_line(tmp_path, capsys):
    from conftest import make_sine, write_wav

    from bridge.cli import main

    wav = write_wav(tmp_path / "a.wav", make_sine(1.0, amplitude=0.3))
    out = tmp_path / "a.json"
    cases = [
        (["--text-file", str(tmp_path / "missing.txt")], "missing.txt: cannot read"),
        (["--text", "hola", "--language", "xx-nope"], "no voice 'xx-nope'"),
        (["--text", "x" * 5000], "at most 4000"),
    ]
    for extra, message in cases:
        assert main(["bake", str(wav), *extra, "-o", str(out)]) != 0
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, err
        assert not out.exists()
