"""emoface serve: concurrent subjects, interrupts without a pop, cancel, bad requests, bake.

Everything runs on loopback with a fake engine (jaw level = the clip's loudness, so each line's
pose is known) and the bridge's mock receiver checking the frames; every wait has a timeout.
"""

import base64
import json
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import make_sine, write_wav

zmq = pytest.importorskip("zmq")

from bridge.mapping import load_mapping  # noqa: E402
from bridge.protocol import EndReason  # noqa: E402
from bridge.receiver import MockReceiver  # noqa: E402
from bridge.service.client import ServiceClient, ServiceError  # noqa: E402
from bridge.service.server import Service, ServiceConfig  # noqa: E402
from emoface_core.controllers import CONTROLLER_INDEX, JAW_OPEN, N_CONTROLLERS  # noqa: E402
from emoface_core.engines.base import EngineBase  # noqa: E402

JAW = "CTRL_C_jaw.Y"  # the jaw channel's target in the default face-board mapping
MOUTH_Y = CONTROLLER_INDEX["CTRL_C_mouth-translateY"]
TIMEOUT_S = 10.0


class FakeEngine(EngineBase):
    """Jaw = twice the clip's RMS; mouth Y ramps 0 -> 1 over the clip (frame order is visible)."""

    name = "fake"
    wants_smoothing = False

    def __init__(self, delay_s=0.0):
        self.delay_s = delay_s
        self.n_calls = 0

    def infer(self, audio, timeline):
        self.n_calls += 1
        time.sleep(self.delay_s)
        n = audio.n_frames
        values = np.zeros((n, N_CONTROLLERS), np.float32)
        values[:, JAW_OPEN] = min(1.0, 2.0 * float(np.sqrt(np.mean(audio.samples**2))))
        values[:, MOUTH_Y] = np.linspace(0.0, 1.0, n, dtype=np.float32)
        return values

    def describe(self):
        return {"name": self.name}


@pytest.fixture(autouse=True)
def _work_in_tmp(tmp_path, monkeypatch):
    # The service reads audio only under its roots and writes bakes only under its output
    # root; both default to the working directory.
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def clips(tmp_path):
    return {
        "quiet": write_wav(tmp_path / "quiet.wav", make_sine(1.0, amplitude=0.1)),
        "loud": write_wav(tmp_path / "loud.wav", make_sine(1.0, amplitude=0.6)),
        "long": write_wav(tmp_path / "long.wav", make_sine(3.0, amplitude=0.6)),
        "long_quiet": write_wav(tmp_path / "long_quiet.wav", make_sine(3.0, amplitude=0.1)),
    }


@pytest.fixture
def served():
    """A running service with a fake engine, a mock receiver on its frames, and a client."""
    engine = FakeEngine()
    config = ServiceConfig(bind="tcp://127.0.0.1:*", zmq="tcp://127.0.0.1:*", blend_ms=100)
    with Service(config, engine) as service:
        service.serve_in_thread()
        with (
            MockReceiver("zmq", service.senders[0].address) as rx,
            ServiceClient(service.endpoint, timeout_s=TIMEOUT_S) as client,
        ):
            client.ping()
            time.sleep(0.3)  # let the SUB socket finish connecting before frame 0
            yield service, client, rx, engine


def _jaw(frames):
    return np.array([f.named()[JAW] for f in frames])


def _frames_of(rx, subject, line_id=None):
    return [
        f for f in rx.frames if f.subject == subject and (line_id is None or f.line_id == line_id)
    ]


def _level(path):
    import soundfile as sf

    x, _ = sf.read(path, dtype="float32")
    return min(1.0, 2.0 * float(np.sqrt(np.mean(x**2))))


def test_two_subjects_speak_at_once(served, clips):
    service, client, rx, _ = served
    a = client.speak("guard", clips["quiet"], raw=True)
    b = client.speak("merchant", clips["loud"], raw=True)
    assert a["n_frames"] == b["n_frames"] == 60 and a["id"] != b["id"]
    done = {line["id"]: client.wait(line["id"], TIMEOUT_S) for line in (a, b)}
    assert rx.wait_until(lambda: len(rx.ends) >= 2, TIMEOUT_S)
    for line, subject, clip in ((a, "guard", clips["quiet"]), (b, "merchant", clips["loud"])):
        status = done[line["id"]]
        assert status["state"] == "finished"
        # Real time: a frame found late is skipped, not sent stale (a busy machine may skip one).
        assert status["frames_sent"] + status["frames_skipped"] == 60
        assert status["frames_skipped"] <= 20  # generous: test threads share the GIL
        frames = _frames_of(rx, subject)
        n = len(frames)
        assert n == status["frames_sent"]
        assert [f.seq for f in frames] == list(range(frames[0].seq, frames[0].seq + n))
        np.testing.assert_allclose(_jaw(frames), _level(clip), atol=1e-6)
        mouth_y = np.array([f.named()["CTRL_C_mouth.Y"] for f in frames])
        assert np.all(np.diff(mouth_y) > 0)  # every frame, in order
        assert frames[-1].t_s == pytest.approx(59 / 60)
    ends = {e.subject: e for e in rx.ends}
    assert ends["guard"].reason == EndReason.FINISHED
    assert ends["guard"].n_frames_sent == done[a["id"]]["frames_sent"]
    # Played concurrently, in real time: both lines overlap and each lasts about a second.
    spans = {
        s: (_frames_of(rx, s)[0].t_received, _frames_of(rx, s)[-1].t_received)
        for s in ("guard", "merchant")
    }
    assert max(s[0] for s in spans.values()) < min(s[1] for s in spans.values())
    for start, end in spans.values():
        assert 0.8 < end - start < 1.6
    assert rx.stats.n_gaps == 0 and rx.stats.n_malformed == 0
    status = client.status()
    assert status["subjects"]["guard"]["state"] == "idle"
    assert status["frames_sent"] == sum(s["frames_sent"] for s in done.values())


def test_new_line_interrupts_with_a_blend_not_a_pop(served, clips):
    service, client, rx, _ = served
    first = client.speak("guard", clips["long_quiet"], raw=True)
    assert rx.wait_until(lambda: len(_frames_of(rx, "guard")) >= 20, TIMEOUT_S)
    second = client.speak("guard", clips["loud"], raw=True)
    second_status = client.wait(second["id"], TIMEOUT_S)
    assert second_status["state"] == "finished"
    old = client.status(first["id"])["line"]
    assert old["state"] == "interrupted" and old["reason"] == f"interrupted by {second['id']}"
    assert rx.wait_until(lambda: len(rx.ends) >= 2, TIMEOUT_S)
    assert [e.reason for e in rx.ends] == [EndReason.INTERRUPTED, EndReason.FINISHED]
    jaw = _jaw(_frames_of(rx, "guard"))
    lo, hi = _level(clips["long_quiet"]), _level(clips["loud"])
    n_old = len(_frames_of(rx, "guard", rx.ends[0].line_id))
    assert 20 <= n_old < 180
    # No pop: the jaw climbs from the old pose to the new one over the blend (6 frames at 100 ms),
    # never by more than smoothstep's steepest step, then holds the new line's value.
    steps = np.diff(jaw)
    assert steps.max() <= 1.5 / 7 * (hi - lo) + 1e-6
    blend = jaw[n_old : n_old + 6]
    assert np.all(np.diff(blend) > 0) and lo < blend[0] < blend[-1] < hi
    np.testing.assert_allclose(jaw[n_old + 6 :], hi, atol=1e-6)
    assert len(jaw) - n_old == second_status["frames_sent"] >= 40


def test_cancel_fades_to_rest_and_ends_the_line(served, clips):
    service, client, rx, _ = served
    line = client.speak("guard", clips["long"], raw=True)
    assert rx.wait_until(lambda: len(_frames_of(rx, "guard")) >= 15, TIMEOUT_S)
    assert client.cancel(line["id"]) == [line["id"]]
    assert client.wait(line["id"], TIMEOUT_S)["state"] == "cancelled"
    assert rx.wait_until(lambda: len(rx.ends) >= 1, TIMEOUT_S)
    end = rx.ends[0]
    assert end.reason == EndReason.INTERRUPTED and end.line_id == rx.starts[0].line_id
    jaw = _jaw(_frames_of(rx, "guard"))
    assert end.n_frames_sent == len(jaw) < 120
    tail = jaw[-6:]  # the fade: smoothly down to the rest pose, ending exactly there
    assert np.all(np.diff(tail) < 0) and tail[-1] == 0.0
    assert jaw[-7] == pytest.approx(_level(clips["long"]), abs=1e-6)
    time.sleep(0.2)
    assert len(_frames_of(rx, "guard")) == len(jaw)  # nothing after the end
    # Nothing left to cancel; an unknown id is an error, not a crash.
    assert client.cancel(subject="guard") == []
    with pytest.raises(ServiceError, match="not_found"):
        client.cancel("guard-999")


def test_queued_line_is_superseded_by_a_newer_one(clips):
    engine = FakeEngine(delay_s=0.3)
    config = ServiceConfig(bind="tcp://127.0.0.1:*", zmq="tcp://127.0.0.1:*")
    with Service(config, engine) as service:
        service.serve_in_thread()
        with ServiceClient(service.endpoint, timeout_s=TIMEOUT_S) as client:
            first = client.speak("guard", clips["quiet"])
            second = client.speak("guard", clips["quiet"])
            third = client.speak("guard", clips["loud"])
            assert client.wait(third["id"], TIMEOUT_S)["state"] == "finished"
            skipped = client.status(second["id"])["line"]
            assert skipped["state"] == "interrupted" and third["id"] in skipped["reason"]
            assert skipped["frames_sent"] == 0
            assert client.status(first["id"])["line"]["state"] in ("interrupted", "finished")
            assert engine.n_calls == 2  # the superseded line was never computed


class BrokenEngine(FakeEngine):
    def infer(self, audio, timeline):
        raise RuntimeError("GPU on fire")


def test_busy_queue_and_failed_lines_are_reported(clips):
    config = ServiceConfig(bind="tcp://127.0.0.1:*", zmq="tcp://127.0.0.1:*", max_queue=1)
    with Service(config, FakeEngine(delay_s=0.5)) as service:
        service.serve_in_thread()
        with ServiceClient(service.endpoint, timeout_s=TIMEOUT_S) as client:
            first = client.speak("guard", clips["quiet"])
            assert first["queued"] == 0
            with pytest.raises(ServiceError, match="busy: 1 requests are waiting"):
                client.speak("merchant", clips["quiet"])
            client.wait(first["id"], TIMEOUT_S)
            assert client.speak("merchant", clips["quiet"])["queued"] == 0  # room again
    with Service(
        ServiceConfig(bind="tcp://127.0.0.1:*", zmq="tcp://127.0.0.1:*"), BrokenEngine()
    ) as service:
        service.serve_in_thread()
        with ServiceClient(service.endpoint, timeout_s=TIMEOUT_S) as client:
            line = client.wait(client.speak("guard", clips["quiet"])["id"], TIMEOUT_S)
            assert line["state"] == "failed" and "GPU on fire" in line["reason"]
            with pytest.raises(ServiceError, match="internal: .*GPU on fire"):
                client.bake(clips["quiet"])
            assert client.ping()["ok"]


BAD_REQUESTS = [
    (b"not json", "bad_request", "not valid JSON"),
    (b"[1, 2]", "bad_request", "must be a JSON object"),
    (b'{"op": "dance"}', "bad_request", "op must be one of"),
    (b'{"op": "speak"}', "bad_request", "subject must be a non-empty string"),
    (
        b'{"op": "speak", "subject": "no spaces!", "audio": "x.wav"}',
        "bad_request",
        "subject must be",
    ),
    (
        b'{"op": "speak", "subject": "a", "audio": "x.wav", "emotoin": "sad"}',
        "bad_request",
        "unknown field 'emotoin'",
    ),
    (
        b'{"op": "speak", "subject": "a", "emotion": "grumpy", "audio": "x.wav"}',
        "bad_request",
        "unknown emotion 'grumpy'",
    ),
    (
        b'{"op": "speak", "subject": "a", "audio": "/no/such.wav"}',
        "bad_audio",
        "no readable audio file there",
    ),
    (b'{"op": "speak", "subject": "a", "audio_b64": "@@@"}', "bad_request", "not valid base64"),
    (
        b'{"op": "speak", "subject": "a", "audio_b64": "' + base64.b64encode(b"RIFFjunk") + b'"}',
        "bad_audio",
        "audio_b64: not a readable audio file",
    ),
    (b'{"op": "speak", "subject": "a"}', "bad_request", "exactly one of audio"),
    (b'{"op": "speak", "subject": "a", "audio": "x.wav", "seed": -1}', "bad_request", "seed must"),
    (
        b'{"op": "speak", "subject": "a", "audio": "x.wav", "transports": ["osc"]}',
        "bad_request",
        "transport 'osc' is not enabled",
    ),
    (b'{"op": "cancel"}', "bad_request", "exactly one of id, subject or all"),
    (b'{"op": "status", "id": 5}', "bad_request", "id must be a non-empty string"),
    (b'{"op": "bake", "audio": "x.wav", "format": "mp3"}', "bad_request", "format must be one of"),
    (b'{"op": "ping", "req_id": [1]}', "bad_request", "req_id must be"),
]


def test_bad_requests_get_clear_errors_and_the_service_lives_on(served, clips):
    service, client, rx, _ = served
    sock = zmq.Context.instance().socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVTIMEO, int(TIMEOUT_S * 1000))
    sock.connect(service.endpoint)
    try:
        for payload, code, fragment in BAD_REQUESTS:
            sock.send(payload)
            reply = json.loads(sock.recv())
            assert reply["ok"] is False, payload
            assert reply["error"]["code"] == code, (payload, reply)
            assert fragment in reply["error"]["message"], (payload, reply)
        sock.send(json.dumps({"op": "ping", "req_id": "r7"}).encode())
        reply = json.loads(sock.recv())
        assert reply["ok"] and reply["req_id"] == "r7"
    finally:
        sock.close(0)
    # Garbage from a DEALER (no REQ envelope, several parts, binary) gets a reply or nothing,
    # and never a dead service.
    dealer = zmq.Context.instance().socket(zmq.DEALER)
    dealer.setsockopt(zmq.LINGER, 0)
    dealer.setsockopt(zmq.RCVTIMEO, int(TIMEOUT_S * 1000))
    dealer.connect(service.endpoint)
    try:
        dealer.send_multipart([b"\x00\xff", b"\xfe" * 100])
        reply = dealer.recv_multipart()  # the extra parts come back as an envelope
        assert reply[0] == b"\x00\xff" and json.loads(reply[-1])["error"]["code"] == "bad_request"
        dealer.send_multipart([b'{"op": "ping", "req_id": 3}'])
        pong = json.loads(dealer.recv_multipart()[-1])
        assert pong["ok"] and pong["req_id"] == 3
    finally:
        dealer.close(0)
    assert client.ping()["ok"]
    line = client.speak("guard", clips["quiet"], raw=True)
    assert client.wait(line["id"], TIMEOUT_S)["state"] == "finished"
    assert service.counters["errors"] == len(BAD_REQUESTS) + 1


def test_req_id_is_echoed(served):
    service, client, rx, _ = served
    assert client.request("ping", req_id="abc")["req_id"] == "abc"


def test_bake_in_the_reply_or_to_a_file(served, clips, tmp_path):
    service, client, rx, engine = served
    anim = client.bake_animation(clips["loud"], emotion="happy", raw=True)
    assert anim.n_frames == 60 and anim.metadata["emotion"] == "happy@0"
    np.testing.assert_allclose(anim.values[:, JAW_OPEN], _level(clips["loud"]), atol=1e-6)
    root = tmp_path / "emoface-serve-output"  # the default output root (the working directory)
    out = root / "baked" / "line.txt"
    reply = client.bake(clips["quiet"], format="txt", output=out)
    assert reply["path"] == str(out) and np.loadtxt(out, delimiter=",").shape == (60, N_CONTROLLERS)
    csv = client.bake(clips["quiet"], format="csv", mapping="metahuman_curves")["text"]
    assert csv.splitlines()[0].split(",") == ["time_s", *load_mapping("metahuman_curves").names]
    samples = make_sine(0.5)
    assert client.bake_animation(samples, raw=True).n_frames == 30  # numpy samples as bytes
    with pytest.raises(ServiceError, match="output .* must end in .json"):
        client.bake(clips["quiet"], output=tmp_path / "x.txt")
    (root / "a_file").write_text("not a folder")
    with pytest.raises(ServiceError, match="cannot write") as failure:
        client.bake(clips["quiet"], output=root / "a_file" / "line.json")
    assert failure.value.code == "bad_output"
    assert client.request("ping")["ok"]  # the service carries on


def test_transport_selection_and_audio_bytes(clips):
    from bridge.receiver import MockReceiver as Rx

    with Rx("osc", "127.0.0.1:0") as osc_rx:
        config = ServiceConfig(
            bind="tcp://127.0.0.1:*", zmq="tcp://127.0.0.1:*", osc=osc_rx.address
        )
        with Service(config, FakeEngine()) as service:
            service.serve_in_thread()
            with (
                Rx("zmq", service.senders[0].address) as zmq_rx,
                ServiceClient(service.endpoint, timeout_s=TIMEOUT_S) as client,
            ):
                time.sleep(0.3)
                line = client.speak(
                    "npc", clips["quiet"].read_bytes(), transports=["osc"], raw=True
                )
                assert client.wait(line["id"], TIMEOUT_S)["state"] == "finished"
                sent = client.status(line["id"])["line"]["frames_sent"]
                assert sent >= 40, client.status(line["id"])
                # UDP: on a loaded machine the kernel may drop a few 8 kB bundles; none may be
                # garbled, and the values must be the line's.
                osc_rx.wait_for(sent, 3.0)
                assert osc_rx.stats.n_frames >= 0.8 * sent and osc_rx.stats.n_malformed == 0
                time.sleep(0.1)
                assert len(zmq_rx.frames) == 0  # only the transport asked for
                np.testing.assert_allclose(_jaw(osc_rx.frames), _level(clips["quiet"]), atol=1e-5)


def test_config_is_validated():
    with pytest.raises(ValueError, match="blend_ms must be between"):
        ServiceConfig(blend_ms=-1)
    with pytest.raises(ValueError, match="needs at least one frame transport"):
        ServiceConfig(zmq=None)
    with pytest.raises(ValueError, match="ZeroMQ endpoint must start with"):
        ServiceConfig(bind="localhost:5556")


def test_client_times_out_and_recovers():
    ctx = zmq.Context.instance()
    with ServiceClient("tcp://127.0.0.1:1", timeout_s=0.2, context=ctx) as client:
        with pytest.raises(TimeoutError, match="no reply from tcp://127.0.0.1:1 within 0.2 s"):
            client.ping()
        with pytest.raises(TimeoutError):  # a fresh socket, not "operation cannot be accomplished"
            client.ping()


def _start_cli_service(tmp_path, *extra):
    import os
    import re
    import subprocess
    import sys

    from conftest import REPO_ROOT

    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    cmd = [
        sys.executable,
        "-m",
        "bridge.cli",
        "serve",
        "--bind",
        "tcp://127.0.0.1:*",
        "--zmq",
        "tcp://127.0.0.1:*",
        "--engine",
        "procedural",
        *extra,
    ]
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    seen = []
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        seen.append(line)
        m = re.search(r"listening on (\S+); frames to zmq ([^;\s]+)", line)
        if m:
            return proc, m.group(1), m.group(2)
    proc.kill()
    pytest.fail(f"emoface serve did not start: {''.join(seen)}")


def test_cli_serve_answers_then_stops_cleanly_on_sigterm(tmp_path, clips):
    import signal

    pytest.importorskip("emoface_core.engines.procedural.engine")
    proc, endpoint, frames = _start_cli_service(tmp_path, "--emotion", "happy")
    try:
        with MockReceiver("zmq", frames) as rx, ServiceClient(endpoint, timeout_s=TIMEOUT_S) as c:
            assert c.status()["engine"]["name"] == "procedural"
            time.sleep(0.3)
            line = c.speak("npc", clips["long"], seed=1)
            assert rx.wait_for(10, TIMEOUT_S)
            assert rx.starts[0].info["emotion"] == "happy@0"  # the --emotion default
            assert rx.starts[0].info["audio"] == str(Path(clips["long"]).resolve())
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=TIMEOUT_S)
            assert rx.wait_until(lambda: len(rx.ends) == 1, TIMEOUT_S)
            assert rx.ends[0].reason == EndReason.SHUTDOWN and rx.ends[0].line_id == 1
        assert proc.returncode == 0, err
        assert "stopped after" in err and "1 lines" in err and "Traceback" not in err
        assert line["n_frames"] == 180
    finally:
        proc.kill()


@pytest.mark.slow
def test_npc_dialogue_example_runs(tmp_path):
    import subprocess
    import sys

    from conftest import REPO_ROOT

    pytest.importorskip("emoface_core.engines.procedural.engine")
    out = subprocess.run(
        [sys.executable, str(REPO_ROOT / "examples" / "npc_dialogue.py")],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    assert "merchant-2  interrupted" in out.stdout and "cancelled" in out.stdout
    assert " 0 gaps, 0 malformed" in out.stdout
