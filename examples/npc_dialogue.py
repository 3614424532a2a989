"""Drive `emoface serve` from a dialogue script and watch the frames with the mock receiver.

Two NPCs talk over each other: the guard and the merchant speak at the same time, the merchant
is interrupted by a newer line (the service cross-fades, no pop), and the last line is cancelled
halfway (the face fades to rest). A mock receiver subscribed to the service's frames checks what
arrives per NPC and prints a table at the end.

    python examples/npc_dialogue.py                      # starts its own service (procedural)
    python examples/npc_dialogue.py --endpoint tcp://127.0.0.1:5556 --frames tcp://127.0.0.1:5555
                                                         # talks to a running `emoface serve`

Everything stays on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # run from a checkout without installing

from bridge.receiver import MockReceiver  # noqa: E402
from bridge.service.client import ServiceClient  # noqa: E402

AUDIO = HERE / "audio"

# (seconds after the scene starts, NPC, clip, emotion, what happens)
DIALOGUE = [
    (0.0, "guard", "hello_en.wav", "angry", "speak"),
    (0.3, "merchant", "hola_es.wav", "happy", "speak"),
    (1.5, "merchant", "nihao_zh.wav", "surprise@0,happy@1.5", "speak"),  # interrupts hola
    (4.0, "guard", "nihao_zh.wav", "sad:0.7", "speak"),
    (5.0, "guard", None, None, "cancel"),  # the guard stops mid-sentence
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint", help="a running service's request endpoint")
    parser.add_argument("--frames", help="that service's ZeroMQ frame endpoint")
    parser.add_argument("--engine", default="procedural", help="engine of the built-in service")
    parser.add_argument("--checkpoint", default=None, help="weights for --engine emoface")
    args = parser.parse_args()
    if bool(args.endpoint) != bool(args.frames):
        parser.error("--endpoint and --frames go together")

    if args.endpoint:
        return run_scene(args.endpoint, args.frames)

    from bridge.service.server import Service, ServiceConfig
    from emoface_core.engines import load_engine

    engine = load_engine(args.engine, checkpoint=args.checkpoint, device="cpu")
    config = ServiceConfig(
        bind="tcp://127.0.0.1:*", zmq="tcp://127.0.0.1:*", audio_roots=(str(AUDIO),)
    )
    with Service(config, engine) as service:
        service.serve_in_thread()
        print(f"service on {service.endpoint}, frames on {service.senders[0].address}")
        return run_scene(service.endpoint, service.senders[0].address)


def run_scene(endpoint: str, frames: str) -> int:
    with MockReceiver("zmq", frames) as rx, ServiceClient(endpoint, timeout_s=30) as client:
        client.ping()
        time.sleep(0.3)  # let the receiver's subscription reach the publisher
        lines = []
        start = time.monotonic()
        for at_s, npc, clip, emotion, action in DIALOGUE:
            time.sleep(max(0.0, start + at_s - time.monotonic()))
            if action == "cancel":
                stopped = client.cancel(subject=npc)
                print(f"{time.monotonic() - start:5.2f} s  {npc:<9} cancel -> {stopped}")
                continue
            reply = client.speak(npc, AUDIO / clip, emotion=emotion, seed=len(lines))
            lines.append(reply["id"])
            print(
                f"{time.monotonic() - start:5.2f} s  {npc:<9} says {clip} ({emotion}) "
                f"-> {reply['id']}, {reply['duration_s']:.2f} s"
            )
        final = [client.wait(line_id, timeout_s=60) for line_id in lines]
        time.sleep(0.2)

    print(f"\n{'line':<12}{'state':<13}{'sent':>6}{'skipped':>9}  reason")
    for line in final:
        print(
            f"{line['id']:<12}{line['state']:<13}{line['frames_sent']:>6}"
            f"{line['frames_skipped']:>9}  {line['reason']}"
        )
    print(f"\n{'NPC':<10}{'frames':>8}{'lines':>7}  ends")
    for npc in sorted({f.subject for f in rx.frames}):
        n = sum(f.subject == npc for f in rx.frames)
        ends = [e.reason.name.lower() for e in rx.ends if e.subject == npc]
        starts = sum(s.subject == npc for s in rx.starts)
        print(f"{npc:<10}{n:>8}{starts:>7}  {', '.join(ends)}")
    stats = rx.stats
    print(
        f"\nreceiver: {stats.n_frames} frames, {stats.n_gaps} gaps, "
        f"{stats.n_malformed} malformed, latency p50 {rx.timing()['latency_p50_ms']:.1f} ms"
    )
    return 0 if stats.n_frames and not stats.n_malformed and not stats.n_gaps else 1


if __name__ == "__main__":
    sys.exit(main())
