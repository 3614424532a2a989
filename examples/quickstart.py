"""The library in one page: bake a clip, map it to the face board, stream it to a mock receiver.

    python examples/quickstart.py                        # an example clip, emotion happy
    python examples/quickstart.py my_line.wav --emotion "angry@0,sad@2" --out baked.json

Everything runs on this machine: the frames go over ZeroMQ on 127.0.0.1 to a mock receiver in
the same process, which checks that what arrived equals the mapped bake.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # run from a checkout without installing

from bridge.mapping import load_mapping  # noqa: E402
from bridge.receiver import MockReceiver  # noqa: E402
from bridge.runtime.clips import ClipPlayer  # noqa: E402
from bridge.runtime.subject import SubjectStream, outputs_for  # noqa: E402
from bridge.transports.zmq import ZmqSender  # noqa: E402
from emoface_core.animate import animate_audio  # noqa: E402
from emoface_core.audio import load_audio  # noqa: E402
from emoface_core.emotion import parse_emotion_spec  # noqa: E402
from emoface_core.engines import load_engine  # noqa: E402
from emoface_core.formats import get_writers  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("audio", nargs="?", default=str(HERE / "audio" / "hello_en.wav"))
    parser.add_argument("--emotion", default="happy")
    parser.add_argument("--engine", default="auto", help="auto, emoface or procedural")
    parser.add_argument("--checkpoint", default=None, help="EmoFace weights for the network")
    parser.add_argument("--out", default=None, help="also write the bake (.json, .txt or .csv)")
    args = parser.parse_args()

    # 1. Bake: audio + emotion -> 174 controller values per frame at 60 fps.
    engine = load_engine(args.engine, checkpoint=args.checkpoint)
    animation = animate_audio(
        engine, load_audio(args.audio), parse_emotion_spec(args.emotion), seed=0
    )
    print(f"engine {engine.name}: {animation.n_frames} frames ({animation.duration_s:.2f} s)")
    if args.out:
        get_writers(Path(args.out).suffix.lstrip("."))[0].write(animation, args.out)
        print(f"wrote {args.out}")

    # 2. Map: the 174 channels -> named face-board controls of Unreal's face control rig.
    mapping = load_mapping("metahuman_faceboard")
    mapped = mapping.apply_array(animation.values)
    jaw = mapping.names.index("CTRL_C_jaw.Y")
    print(f"mapping {len(mapping.names)} targets; jaw open peaks at {mapped[:, jaw].max():.2f}")

    # 3. Stream in real time over ZeroMQ to a mock receiver, as Unreal would receive it.
    with (
        ZmqSender("tcp://127.0.0.1:*") as sender,
        MockReceiver("zmq", sender.address, subject="npc1") as receiver,
    ):
        receiver.wait_until(lambda: False, 0.3)  # let the subscription settle
        stream = SubjectStream("npc1", outputs_for([sender], mapping))
        stats = ClipPlayer([(stream, animation.values)]).run()
        receiver.wait_for(animation.n_frames, timeout_s=5.0)
        got = np.array([f.values for f in receiver.frames])
    error = float(np.abs(got - mapped[: len(got)]).max()) if len(got) else float("nan")
    print(f"sent {stats.n_frames} frames, received {len(got)}, max |received - mapped| {error:.1e}")
    return 0 if len(got) == animation.n_frames and error < 1e-5 else 1


if __name__ == "__main__":
    sys.exit(main())
