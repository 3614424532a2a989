"""Batch baking: plan lines from files, folders, globs or manifests; bake what is not up to date.

A batch runs in four steps:

1. **Plan** (``bake.lines.collect_lines``): every input becomes ``BakeLine``s. A folder gives
   its audio files (recursively, keeping sub-folders in the output names), a glob its matches, a
   manifest (``.csv`` with a header row, or ``.jsonl``) one line per row with its own audio,
   emotion spec, subject, output name and seed. A row that cannot be used (no audio, a bad seed,
   an output name already taken) becomes a line with a ``problem``: it is reported as failed,
   the rest go on.
2. **Check** (``bake.journal.plan_batch``): a line is up to date when every output it would
   write exists and was written from the same audio and settings (the journal's fingerprints).
3. **Bake** (``bridge.bake.runners``): a runner turns each remaining line into rendered
   file contents. ``jobs=1`` runs in this process; ``jobs>1`` starts worker processes that each
   load the engine once and are fed one line at a time (a worker that dies fails only its line
   and is replaced); ``ray_address`` does the same on Ray actors. On CUDA the workers take turns
   on the GPU through one lock, so N workers overlap decoding, post-processing and rendering
   without fighting over the device.
4. **Write**: only this process writes, each file through ``atomic_write`` (temporary sibling, then
   ``os.replace``), then appends the journal. Killing a bake therefore never leaves a partial
   output: an interrupted write removes its temporary file, and a hard kill (SIGKILL) can at worst
   leave a hidden ``.NAME.*.part`` file, which the next bake into that folder removes. A lock file
   keeps two bakes from writing into the same folder at once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bridge.bake.journal import (
    BatchPlan,
    FolderLock,
    Journal,
    plan_batch,
    read_journal,
    remove_stale_parts,
)
from bridge.bake.lines import BakeLine
from bridge.bake.render import BatchSettings, Outcome, failure_reason
from bridge.bake.runners import Runner
from emoface_core.formats import WRITERS, atomic_write

log = logging.getLogger(__name__)

STATUSES = ("done", "skipped", "failed")


@dataclass(frozen=True)
class LineResult:
    """What happened to one line.

    Attributes:
        line: the line.
        status: "done", "skipped" (up to date) or "failed".
        reason: one line saying why it failed (empty otherwise).
        outputs: files written (done) or found up to date (skipped).
        audio_s: length of the audio baked (done only).
        elapsed_s: wall time spent baking it, in its worker.
        transcript: how its text (or phones) drove the lips, from the animation's metadata:
            ``used``, ``aligned_share``, ``fallback_s``... (None: no text, or not baked now).
    """

    line: BakeLine
    status: str
    reason: str = ""
    outputs: tuple[Path, ...] = ()
    audio_s: float = 0.0
    elapsed_s: float = 0.0
    transcript: dict[str, Any] | None = None


@dataclass
class BatchReport:
    """The outcome of a batch: one result per line, in plan order, plus totals.

    Attributes:
        results: the lines that were done, skipped or failed (interrupted ones are left out).
        wall_s: duration of the run.
        interrupted: whether Ctrl-C/SIGTERM stopped it early.
        n_unfinished: lines left unbaked by the interruption (a rerun bakes them).
        engine: the engine that ran ("emoface" or "procedural").
    """

    results: list[LineResult]
    wall_s: float = 0.0
    interrupted: bool = False
    n_unfinished: int = 0
    engine: str = ""

    def count(self, status: str) -> int:
        """Number of lines with a status ("done", "skipped", "failed")."""
        return sum(r.status == status for r in self.results)

    @property
    def failed(self) -> list[LineResult]:
        """The failed lines, in plan order."""
        return [r for r in self.results if r.status == "failed"]

    @property
    def ok(self) -> bool:
        """True when nothing failed and the batch ran to the end."""
        return not self.failed and not self.interrupted

    @property
    def audio_s_done(self) -> float:
        """Seconds of audio baked in this run."""
        return sum(r.audio_s for r in self.results if r.status == "done")

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready summary (for ``--report``)."""
        return {
            "engine": self.engine,
            "wall_s": round(self.wall_s, 3),
            "interrupted": self.interrupted,
            "unfinished": self.n_unfinished,
            "counts": {s: self.count(s) for s in STATUSES},
            "audio_s_done": round(self.audio_s_done, 3),
            "lines": [
                {
                    "origin": r.line.label,
                    "audio": str(r.line.audio),
                    "output": r.line.output,
                    "status": r.status,
                    "reason": r.reason,
                    "outputs": [str(p) for p in r.outputs],
                    "audio_s": round(r.audio_s, 3),
                    "elapsed_s": round(r.elapsed_s, 3),
                    **({"transcript": r.transcript} if r.transcript else {}),
                }
                for r in self.results
            ],
        }


def run_batch(
    lines: Sequence[BakeLine],
    settings: BatchSettings,
    *,
    jobs: int = 1,
    force: bool = False,
    ray_address: str | None = None,
    on_plan: Callable[[BatchPlan], None] | None = None,
    on_result: Callable[[LineResult], None] | None = None,
    runner: Runner | None = None,
) -> BatchReport:
    """Bake a batch: skip up-to-date lines, bake the rest, write atomically, report everything.

    Args:
        lines: from ``collect_lines``.
        settings: output folder, formats, engine and post-processing.
        jobs: worker processes (1 = bake in this process).
        force: bake lines even when their outputs are up to date.
        ray_address: run on a Ray cluster instead ("auto", "ray://host:10001", "local").
        on_plan: called once with the plan, before any baking (e.g. to size a progress bar).
        on_result: called with each line's result as it completes (skipped and invalid lines
            first); it must not raise.
        runner: a ready runner (tests); default from ``jobs`` and ``ray_address``.

    Returns:
        The report. A Ctrl-C (``KeyboardInterrupt``) stops the batch cleanly: files already
        written stay, nothing half-written remains, and the report says ``interrupted``.

    Raises:
        BatchError: the engine cannot be loaded, or another bake holds the output folder.
    """
    start = time.perf_counter()
    settings = settings.resolved()
    settings.output_dir.mkdir(parents=True, exist_ok=True)
    report = BatchReport([], engine=settings.engine)
    results: dict[int, LineResult] = {}

    def emit(index: int, result: LineResult) -> None:
        results[index] = result
        if on_result is not None:
            on_result(result)

    with FolderLock(settings.output_dir):
        removed = remove_stale_parts(settings.output_dir)
        if removed:
            log.info("removed %d temporary file(s) left by an interrupted bake", removed)
        journal = Journal(settings.output_dir)
        try:
            known = read_journal(settings.output_dir)
            plan = plan_batch(lines, settings, force=force, journal=known)
            if on_plan is not None:
                on_plan(plan)
            for i in plan.invalid:
                emit(i, LineResult(plan.lines[i], "failed", reason=plan.lines[i].problem))
            for i in plan.up_to_date:
                line = plan.lines[i]
                paths = tuple(settings.output_dir / f for f in settings.output_files(line))
                emit(i, LineResult(line, "skipped", outputs=paths))
            if plan.to_bake:
                if runner is None:
                    runner = _make_runner(settings, jobs, ray_address)
                try:
                    batch = [plan.lines[i] for i in plan.to_bake]
                    for k, outcome in runner.run(batch):
                        emit(
                            plan.to_bake[k],
                            _write_outcome(batch[k], outcome, settings, plan, journal),
                        )
                except KeyboardInterrupt:
                    report.interrupted = True
                finally:
                    runner.close()
        finally:
            journal.close()
    report.results = [results[i] for i in sorted(results)]
    report.n_unfinished = len(plan.lines) - len(results)
    report.wall_s = time.perf_counter() - start
    return report


def _make_runner(settings: BatchSettings, jobs: int, ray_address: str | None) -> Runner:
    from bridge.bake.runners import InlineRunner, ProcessRunner, RayRunner

    if ray_address:
        return RayRunner(settings, ray_address, max(1, jobs))
    if jobs <= 1:
        return InlineRunner(settings)
    return ProcessRunner(settings, jobs)


def _write_outcome(
    line: BakeLine, outcome: Outcome, settings: BatchSettings, plan: BatchPlan, journal: Journal
) -> LineResult:
    if isinstance(outcome, str):
        return LineResult(line, "failed", reason=outcome)
    written = []
    try:
        for fmt, text in outcome.files.items():
            rel = f"{line.output}.{WRITERS[fmt].extension}"
            path = settings.output_dir / rel
            atomic_write(path, text)
            journal.record(rel, plan.fingerprints[rel])
            written.append(path)
    except OSError as e:
        return LineResult(
            line,
            "failed",
            reason=f"cannot write output: {failure_reason(e)}",
            outputs=tuple(written),
        )
    return LineResult(
        line,
        "done",
        outputs=tuple(written),
        audio_s=outcome.audio_s,
        elapsed_s=outcome.elapsed_s,
        transcript=outcome.transcript,
    )


def iter_summary_rows(report: BatchReport) -> Iterable[tuple[str, int, str]]:
    """Rows ``(status, n_lines, audio)`` of the summary table, for any front end to print."""
    yield "done", report.count("done"), f"{report.audio_s_done:.1f} s audio"
    yield "skipped", report.count("skipped"), "up to date"
    yield "failed", report.count("failed"), ""
    if report.n_unfinished:
        yield "unfinished", report.n_unfinished, "interrupted before they were baked"
    texted = [
        r.transcript
        for r in report.results
        if r.transcript and r.transcript.get("source") != "phones"
    ]
    if texted:
        unused = sum(not t.get("used") for t in texted)
        partial = sum(bool(t.get("used") and t.get("fallback_s")) for t in texted)
        note = f"{partial} with audio-only stretches, {unused} not aligned (see --report)"
        yield "with text", len(texted), note
