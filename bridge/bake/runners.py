"""Where batch lines get baked: in this process, in worker processes, or on Ray actors.

Every runner loads the engine once per worker and returns rendered file contents (or a one-line
failure reason) per line; ``bridge.bake.run.run_batch`` does all the writing. Workers never
touch the output folder, so stopping or killing them can never leave a partial output.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from bridge.bake.lines import BakeLine
from bridge.bake.render import BatchSettings, Outcome, bake_line, failure_reason, load_batch_engine
from bridge.errors import BatchError
from emoface_core.errors import ConfigError, EmoFaceError

log = logging.getLogger(__name__)


class Runner(Protocol):
    """Turns lines into outcomes; implemented below."""

    def run(self, lines: Sequence[BakeLine]) -> Iterator[tuple[int, Outcome]]:
        """Yield ``(index into lines, outcome)`` as lines finish, in any order."""
        ...

    def close(self) -> None:
        """Release workers; called once, also after an interrupt."""
        ...


MAX_WORKER_RESTARTS_PER_JOB = 2  # a worker dying this often per --jobs means something is broken


class InlineRunner:
    """Bakes in this process, one line after the other (``jobs=1``)."""

    def __init__(self, settings: BatchSettings, engine: Any | None = None) -> None:
        self.settings = settings
        self._engine = engine

    def run(self, lines: Sequence[BakeLine]) -> Iterator[tuple[int, Outcome]]:
        """Yield ``(index, outcome)`` per line, in order."""
        if lines and self._engine is None:
            try:
                self._engine = load_batch_engine(self.settings)
            except (EmoFaceError, ValueError, OSError, ImportError) as e:
                raise BatchError(f"the engine cannot be loaded: {failure_reason(e)}") from e
        for i, line in enumerate(lines):
            try:
                yield i, bake_line(line, self.settings, self._engine)
            except Exception as e:  # one bad line never stops the batch
                log.debug("line %s failed", line.label, exc_info=True)
                yield i, failure_reason(e)

    def close(self) -> None:
        """Nothing to release."""


def _uses_gpu(settings: BatchSettings) -> bool:
    if settings.engine != "emoface" or settings.device == "cpu":
        return False
    if settings.device == "cuda":
        return True
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


class _LockedEngine:
    """An engine whose ``infer`` holds a cross-process lock: workers take turns on one GPU."""

    def __init__(self, engine: Any, lock: Any) -> None:
        self._engine = engine
        self._lock = lock
        self.name = engine.name
        self.wants_smoothing = engine.wants_smoothing
        self.takes_seed = engine.takes_seed

    def infer(self, audio: Any, timeline: Any, **kwargs: Any) -> np.ndarray:
        """The engine's ``infer``, holding the GPU lock."""
        with self._lock:
            return self._engine.infer(audio, timeline, **kwargs)

    def describe(self) -> dict[str, Any]:
        """The engine's own facts."""
        return self._engine.describe()

    def open_raw_stream(self, *args: Any, **kwargs: Any) -> Any:
        """Batches never stream; the engine's own raw stream, without the lock."""
        return self._engine.open_raw_stream(*args, **kwargs)


def _worker_main(conn: Any, settings: BatchSettings, n_threads: int, gpu_lock: Any) -> None:
    """Body of a worker process: load the engine once, then bake lines sent over ``conn``."""
    import signal

    # Ctrl-C reaches the whole process group; only the parent decides, then stops the workers.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(n_threads)
    try:
        engine = load_batch_engine(settings)
        if settings.engine == "emoface":
            import torch

            torch.set_num_threads(n_threads)
        if gpu_lock is not None:
            engine = _LockedEngine(engine, gpu_lock)
    except Exception as e:  # noqa: BLE001 - one bad line never stops the batch
        conn.send(("init_error", failure_reason(e)))
        return
    conn.send(("ready", None))
    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):
            return
        if task is None:
            return
        index, line = task
        try:
            conn.send(("result", index, bake_line(line, settings, engine)))
        except Exception as e:  # noqa: BLE001 - one bad line never takes the worker down
            conn.send(("result", index, failure_reason(e)))


@dataclass
class _Worker:
    process: Any
    conn: Any
    ready: bool = False
    task: int | None = None


class ProcessRunner:
    """Bakes on ``n_workers`` processes, each loading the engine once (``jobs>1``).

    Lines go out one at a time to whichever worker is free, so long and short clips balance out.
    Workers only compute and render; this process writes. A worker that dies (out of memory,
    killed) fails its current line and is replaced.
    """

    def __init__(self, settings: BatchSettings, n_workers: int) -> None:
        import multiprocessing

        if n_workers < 1:
            raise ConfigError(f"jobs must be >= 1, got {n_workers}")
        self.settings = settings
        self.n_workers = n_workers
        # spawn: a clean interpreter per worker (fork and torch's thread pools do not mix).
        self._ctx = multiprocessing.get_context("spawn")
        self._gpu_lock = self._ctx.Lock() if _uses_gpu(settings) else None
        self._threads = max(1, (os.cpu_count() or 1) // n_workers)
        self._workers: list[_Worker] = []
        self._restarts = 0

    def _start_worker(self) -> _Worker:
        parent, child = self._ctx.Pipe()
        process = self._ctx.Process(
            target=_worker_main,
            args=(child, self.settings, self._threads, self._gpu_lock),
            name="emoface-bake-worker",
            daemon=True,
        )
        process.start()
        child.close()
        return _Worker(process, parent)

    def run(self, lines: Sequence[BakeLine]) -> Iterator[tuple[int, Outcome]]:
        """Yield ``(index, outcome)`` per line as workers finish them."""
        from multiprocessing.connection import wait

        pending = deque(range(len(lines)))
        n = min(self.n_workers, len(lines))
        self._workers = [self._start_worker() for _ in range(n)]
        while pending or any(w.task is not None for w in self._workers):
            for w in self._workers:
                if w.ready and w.task is None and pending:
                    w.task = pending.popleft()
                    w.conn.send((w.task, lines[w.task]))
            waitables = [w.conn for w in self._workers]
            waitables += [w.process.sentinel for w in self._workers]
            for ready in wait(waitables, timeout=1.0):
                worker = next(
                    (w for w in self._workers if ready in (w.conn, w.process.sentinel)), None
                )
                if worker is None:
                    continue
                if ready is worker.conn:
                    yield from self._receive(worker)
                elif not worker.process.is_alive() and worker in self._workers:
                    yield from self._replace_dead(worker, bool(pending))

    def _receive(self, worker: _Worker) -> Iterator[tuple[int, Outcome]]:
        try:
            message = worker.conn.recv()
        except (EOFError, OSError):
            return  # the process sentinel reports the death
        kind = message[0]
        if kind == "ready":
            worker.ready = True
        elif kind == "init_error":
            raise BatchError(f"the engine cannot be loaded: {message[1]}")
        elif kind == "result":
            index, outcome = message[1], message[2]
            worker.task = None
            yield index, outcome

    def _replace_dead(self, worker: _Worker, more_pending: bool) -> Iterator[tuple[int, Outcome]]:
        worker.process.join(timeout=1.0)
        code = worker.process.exitcode
        self._workers.remove(worker)
        worker.conn.close()
        log.warning("bake worker %s exited with code %s", worker.process.pid, code)
        if worker.task is not None:
            yield worker.task, f"the worker process died while baking this line (exit code {code})"
        if more_pending or any(w.task is not None for w in self._workers):
            self._restarts += 1
            if self._restarts > MAX_WORKER_RESTARTS_PER_JOB * self.n_workers:
                raise BatchError(f"bake workers keep dying (last exit code {code}); giving up")
            if more_pending:
                self._workers.append(self._start_worker())

    def close(self) -> None:
        """Stop every worker: politely when idle, by signal when interrupted mid-line."""
        for w in self._workers:
            with contextlib.suppress(OSError, ValueError):
                w.conn.send(None)
        deadline = time.monotonic() + 2.0
        for w in self._workers:
            if w.task is not None:
                w.process.terminate()
            w.process.join(timeout=max(0.0, deadline - time.monotonic()))
            if w.process.is_alive():
                w.process.kill()
                w.process.join(timeout=1.0)
            w.conn.close()
        self._workers = []


class RayRunner:
    """Bakes on Ray actors (``--ray ADDRESS``); each actor loads the engine once.

    The driver reads each audio file and ships its bytes, so workers need no shared file system
    for inputs; outputs come back as rendered text and are written here, exactly as with local
    workers. A checkpoint path must be readable on every node.
    """

    def __init__(self, settings: BatchSettings, address: str, n_workers: int) -> None:
        try:
            import ray
        except ImportError:
            raise ImportError("--ray needs Ray: pip install 'emoface[ray]'") from None
        self._ray = ray
        self.settings = settings
        self.n_workers = max(1, n_workers)
        if not ray.is_initialized():
            if address == "local":  # a private single-machine instance (trying it out, tests)
                ray.init(num_cpus=max(1, n_workers), include_dashboard=False, log_to_driver=False)
            else:
                ray.init(address=address, log_to_driver=False)
        self._actors: list[Any] = []

    def run(self, lines: Sequence[BakeLine]) -> Iterator[tuple[int, Outcome]]:
        """Yield ``(index, outcome)`` per line as actors finish them."""
        ray = self._ray
        actor_cls = ray.remote(_RayBaker)
        n = min(self.n_workers, len(lines))
        self._actors = [actor_cls.remote(self.settings) for _ in range(n)]
        idle = list(self._actors)
        pending = deque(range(len(lines)))
        in_flight: dict[Any, tuple[Any, int]] = {}
        while pending or in_flight:
            while idle and pending:
                index = pending.popleft()
                try:
                    payload = lines[index].audio.read_bytes()
                except OSError as e:
                    yield index, _missing_audio_reason(lines[index].audio, e)
                    continue
                actor = idle.pop()
                in_flight[actor.bake.remote(lines[index], payload)] = (actor, index)
            if not in_flight:
                continue
            done, _ = ray.wait(list(in_flight), num_returns=1)
            actor, index = in_flight.pop(done[0])
            idle.append(actor)
            try:
                outcome = ray.get(done[0])
            except Exception as e:  # noqa: BLE001 - the actor died or Ray failed: this line fails, go on
                outcome = f"ray worker failed: {failure_reason(e)}"
                idle.remove(actor)
                replacement = actor_cls.remote(self.settings)
                self._actors.append(replacement)
                idle.append(replacement)
            if isinstance(outcome, tuple) and outcome[0] == "init_error":
                raise BatchError(f"the engine cannot be loaded on a Ray worker: {outcome[1]}")
            yield index, outcome

    def close(self) -> None:
        """Release the actors (the Ray connection stays for the process)."""
        for actor in self._actors:
            try:
                self._ray.kill(actor)
            except Exception:
                log.debug("cannot kill ray actor", exc_info=True)
        self._actors = []


def _missing_audio_reason(path: Path, error: OSError) -> str:
    if isinstance(error, FileNotFoundError):
        return f"{path}: no such audio file"
    return f"{path}: cannot read the audio file ({error.strerror or error})"


class _RayBaker:
    """A Ray actor body: the engine loaded once, lines baked from shipped audio bytes."""

    def __init__(self, settings: BatchSettings) -> None:
        self.settings = settings
        try:
            self.engine = load_batch_engine(settings)
            self.error = ""
        except Exception as e:  # noqa: BLE001 - reported to the driver as init_error
            self.engine, self.error = None, failure_reason(e)

    def bake(self, line: BakeLine, audio_bytes: bytes) -> Outcome | tuple[str, str]:
        import tempfile

        if self.engine is None:
            return ("init_error", self.error)
        with tempfile.TemporaryDirectory(prefix="emoface-ray-") as tmp:
            local = Path(tmp) / (line.audio.name or "audio")
            local.write_bytes(audio_bytes)
            try:
                return bake_line(line, self.settings, self.engine, audio_file=local)
            except Exception as e:  # noqa: BLE001 - a line failure, named after the user's file
                # Name the user's file, not the temporary copy.
                return failure_reason(e).replace(str(local), str(line.audio))
