"""Cost of the Unreal plugin's Python per frame and per bake, outside the editor.

What runs inside the editor for every live frame, in pure Python: decode the packet (protocol
``Decoder``, or OSC conversion first), turn the values into control writes (``ControlPlan``),
skip unchanged controls (``DeltaFilter``). The Unreal calls themselves cannot be timed here; the
table reports how many a frame needs after the delta filter on a realistic clip (procedural
engine on examples/audio/hello_en.wav). Also: the built-in ZeroMQ subscriber's loopback
throughput next to pyzmq's, planning a 10 s bake (mapping + grouping keys) for both assets, and
the editor work each writer and key strategy asks for, counted in ``tests/fake_unreal.py``
(which models the engine's keying path from its source): API calls, Sequencer's interactive
keyings, section interrogations, undo transactions and evaluations, per live tick and per 10 s
bake. Those counts are the budget; the editor's own time per call is what Diagnose measures.

    python benchmarks/bench_unreal_apply.py
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "unreal_plugin" / "EmoFaceBridge" / "Content" / "Python"))
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "benchmarks"))

import fake_unreal  # noqa: E402
import numpy as np  # noqa: E402
from emoface_unreal import baked, bakeplan, controls, osc, protocol, rigmap  # noqa: E402
from machine import describe  # noqa: E402

from bridge import protocol as bp  # noqa: E402
from bridge.mapping import load_mapping  # noqa: E402
from bridge.transports.osc import encode_frame_bundle, schema_message  # noqa: E402
from emoface_core.animation import Animation  # noqa: E402
from emoface_core.controllers import CONTROLLER_NAMES  # noqa: E402
from emoface_core.formats import JsonWriter  # noqa: E402

N_REPEAT = 2000


def realistic_clip() -> np.ndarray:
    from emoface_core.animate import animate_audio
    from emoface_core.audio import load_audio
    from emoface_core.emotion import parse_emotion_spec
    from emoface_core.engines import load_engine

    audio = load_audio(REPO / "examples" / "audio" / "hello_en.wav")
    engine = load_engine("procedural")
    return animate_audio(engine, audio, parse_emotion_spec("happy"), seed=0).values


def per_call_us(fn, n: int = N_REPEAT) -> tuple[float, float]:
    for _ in range(50):
        fn()
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    times.sort()
    return 1e6 * statistics.median(times), 1e6 * times[int(0.95 * len(times))]


def bench_live(values: np.ndarray) -> list[tuple[str, float, float, str]]:
    mapping = load_mapping("metahuman_faceboard")
    schema = mapping.schema("npc1", 60.0)
    mapped = mapping.apply_array(values)
    encoder = bp.FrameEncoder("npc1", schema.schema_id, 60.0)
    packets = [
        encoder.encode_packed(i, i / 60, row.astype("<f4").tobytes())
        for i, row in enumerate(mapped)
    ]
    osc_named = [
        encode_frame_bundle(schema, bp.Frame("npc1", i, i / 60, 60.0, row, schema.schema_id))
        for i, row in enumerate(mapped)
    ]
    osc_array = [
        encode_frame_bundle(
            schema, bp.Frame("npc1", i, i / 60, 60.0, row, schema.schema_id), "array"
        )
        for i, row in enumerate(mapped)
    ]
    rig = {
        n: {"FLOAT": controls.FLOAT, "VECTOR2D": controls.VECTOR2D}.get(k, controls.OTHER)
        for n, k in fake_unreal.fake_board_controls(CONTROLLER_NAMES).items()
    }
    plan = controls.plan_controls(schema.names, rig)
    rows = []

    decoder = protocol.Decoder(["npc1"])
    decoder.feed(protocol.encode(protocol.Schema("npc1", schema.names, 60.0)))
    state = {"i": 0}

    def decode() -> None:
        decoder.last_seq.clear()
        decoder.feed(packets[state["i"] % len(packets)])
        state["i"] += 1

    rows.append(("decode ZeroMQ frame (171 values)", *per_call_us(decode), ""))
    converter = osc.OscToProtocol()
    converter.convert(schema_message(schema))
    rows.append(
        (
            "OSC named bundle -> protocol bytes",
            *per_call_us(lambda: [protocol.encode(m) for m in converter.convert(osc_named[7])]),
            "",
        )
    )
    rows.append(
        (
            "OSC array bundle -> protocol bytes",
            *per_call_us(lambda: [protocol.encode(m) for m in converter.convert(osc_array[7])]),
            "",
        )
    )
    frame = protocol.decode(packets[10])
    rows.append(
        (
            "plan: values -> control writes",
            *per_call_us(
                lambda: (plan.float_values(frame.values), plan.vector_values(frame.values))
            ),
            "",
        )
    )

    delta = controls.DeltaFilter()
    frames = [protocol.decode(p).values for p in packets]
    n_writes = []
    for values_ in frames:
        f, v = delta.select(plan.float_values(values_), plan.vector_values(values_))
        n_writes.append(len(f) + len(v))
    delta = controls.DeltaFilter()
    state["i"] = 0

    def filtered() -> None:
        values_ = frames[state["i"] % len(frames)]
        delta.select(plan.float_values(values_), plan.vector_values(values_))
        state["i"] += 1

    p50, p95 = per_call_us(filtered)
    rows.append(
        (
            "plan + delta filter",
            p50,
            p95,
            f"us per frame; {statistics.mean(n_writes):.0f} of "
            f"{plan.n_controls} controls written per frame",
        )
    )
    return rows


def bench_zmq(n_frames: int = 5000) -> list[tuple[str, float, float, str]]:
    from emoface_unreal import transport
    from emoface_unreal.settings import LiveSettings

    from bridge.transports.zmq import ZmqSender

    rows = []
    mapping = load_mapping("metahuman_faceboard")
    schema = mapping.schema("npc1", 60.0)
    values = mapping.apply_array(np.zeros(len(CONTROLLER_NAMES), np.float32))
    for backend in ("builtin", "pyzmq"):
        with ZmqSender("tcp://127.0.0.1:*", sndhwm=100_000) as sender:
            settings = LiveSettings(endpoint=sender.address, subject="npc1", zmq_backend=backend)
            source = transport.make_source(settings, ["npc1"])
            receiver = transport.Receiver(source, queue_size=200_000)
            receiver.start(wait_s=2.0)
            while receiver.n_packets == 0:  # slow joiner: wait for the subscription
                sender.send_schema(schema)
                time.sleep(0.01)
            start_count = receiver.n_packets
            t0 = time.perf_counter()
            for i in range(n_frames):
                sender.send_frame(bp.Frame("npc1", i, i / 60, 60.0, values, schema.schema_id))
            while receiver.n_packets - start_count < n_frames and time.perf_counter() - t0 < 20:
                time.sleep(0.001)
            elapsed = time.perf_counter() - t0
            got = receiver.n_packets - start_count
            receiver.stop()
            rows.append(
                (
                    f"ZeroMQ receive, {backend}",
                    1e6 * elapsed / max(got, 1),
                    float("nan"),
                    f"us per frame; {got / elapsed:,.0f} frames/s ({got}/{n_frames} received)",
                )
            )
    return rows


def bench_bake(values: np.ndarray, tmp: Path) -> list[tuple[str, float, float, str]]:
    n = 600  # 10 s at 60 fps
    reps = int(np.ceil(n / len(values)))
    clip_values = np.tile(values, (reps, 1))[:n]
    path = JsonWriter().write(Animation(clip_values), tmp / "line.json")
    rows = []
    t0 = time.perf_counter()
    clip = baked.load_clip(path)
    rows.append(("load 10 s .json (stdlib)", 1e3 * (time.perf_counter() - t0), float("nan"), "ms"))
    faceboard, curves = rigmap.load_rig_mapping("faceboard"), rigmap.load_rig_mapping("curves")
    t0 = time.perf_counter()
    keys = bakeplan.control_keys(clip, faceboard)
    rows.append(
        (
            "plan Level Sequence keys, 10 s",
            1e3 * (time.perf_counter() - t0),
            float("nan"),
            f"ms; {keys.n_controls} controls x {n} frames",
        )
    )
    t0 = time.perf_counter()
    ck = bakeplan.curve_keys(clip, curves)
    rows.append(
        (
            "plan AnimSequence curves, 10 s",
            1e3 * (time.perf_counter() - t0),
            float("nan"),
            f"ms; {len(ck.curves)} curves x {n} keys",
        )
    )
    return rows


def _fake_editor(saved: Path):
    fake_unreal.fake_reset(str(saved))
    sys.modules["unreal"] = fake_unreal
    fake_unreal.fake_add_face_rig(CONTROLLER_NAMES)
    fake_unreal.fake_add_metahuman("BP_Ada")
    return fake_unreal.fake_state()


def _counts(state, since: dict[str, int]) -> dict[str, int]:
    now = {
        "keyings": state.n_keyings,
        "interrogations": state.n_interrogations,
        "channel keys": state.n_channel_keys,
        "transactions": len(state.undo),
        "evaluations": state.n_evaluations,
    }
    return {k: v - since.get(k, 0) for k, v in now.items()}


def bench_editor_budget(values: np.ndarray, tmp: Path) -> list[tuple[str, dict[str, int]]]:
    """Editor work per live tick (one frame, every control changed) and per 10 s bake."""
    from emoface_unreal.editor import rig, writer

    mapping = load_mapping("metahuman_faceboard")
    frames = mapping.apply_array(values)
    out = []
    for mode in writer.WRITERS:
        state = _fake_editor(tmp / mode)
        sequence = rig.create_sequence("LS_Budget", "/Game/Budget")
        rig.open_in_sequencer(sequence)
        binding = rig.bind_face(
            sequence,
            state.actors[0],
            fake_unreal._STATE.assets[
                "/Game/MetaHumans/Common/Face/Face_ControlBoard_CtrlRig"
            ].get_control_rig_class(),
        )
        w = writer.make_writer(mode, binding)
        plan = controls.plan_controls(mapping.names, rig.rig_controls(binding.rig))
        before = _counts(state, {})
        calls = w.n_calls
        w.write(plan.float_values(frames[5].tolist()), plan.vector_values(frames[5].tolist()))
        if w.needs_evaluation:
            from emoface_unreal.editor import compat

            compat.force_evaluation(0)
        counts = _counts(state, before)
        counts["API calls"] = w.n_calls - calls + counts["evaluations"]
        out.append((f"live tick, {mode}", counts))
    n = 600
    clip = np.tile(values, (int(np.ceil(n / len(values))), 1))[:n]
    path = JsonWriter().write(Animation(clip), tmp / "line10s.json")
    from emoface_unreal.editor.bake import bake_folder
    from emoface_unreal.settings import BakeSettings

    for strategy in ("channels", "rig"):
        state = _fake_editor(tmp / f"bake-{strategy}")
        before = _counts(state, {})
        calls = len(state.calls)
        report = bake_folder(
            BakeSettings(input_folder=str(path), actor="BP_Ada", key_strategy=strategy)
        )
        assert report.n_failed == 0, report.summary()
        counts = _counts(state, before)
        counts["API calls"] = len(state.calls) - calls + counts["channel keys"]
        out.append((f"10 s bake, {strategy}", counts))
    return out


def main() -> int:
    import tempfile

    print(describe())
    values = realistic_clip()
    rows = bench_live(values)
    rows += bench_zmq()
    with tempfile.TemporaryDirectory() as tmp:
        rows += bench_bake(values, Path(tmp))
        budget = bench_editor_budget(values, Path(tmp))
    print(f"{'step':42s} {'p50':>9s} {'p95':>9s}  unit / note")
    for name, p50, p95, note in rows:
        p95_text = "" if np.isnan(p95) else f"{p95:9.1f}"
        print(f"{name:42s} {p50:9.1f} {p95_text:>9s}  {note or 'us per frame'}")
    print()
    keys = ("API calls", "keyings", "interrogations", "transactions", "evaluations")
    print(f"{'editor work (fake_unreal counts)':34s}" + "".join(f"{k:>15s}" for k in keys))
    for name, counts in budget:
        print(f"{name:34s}" + "".join(f"{counts.get(k, 0):15,d}" for k in keys))
    return 0


if __name__ == "__main__":
    sys.exit(main())
