"""Batch bake: planning, manifests, skip-if-up-to-date, failures, workers, and kill safety."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import REPO_ROOT, TINY_WAV2VEC2, make_sine, write_wav

from bridge.bake.journal import JOURNAL_NAME, FolderLock, plan_batch
from bridge.bake.lines import BakeLine, collect_lines, derive_seed, load_manifest
from bridge.bake.render import BatchSettings
from bridge.bake.run import run_batch
from bridge.bake.runners import InlineRunner
from bridge.errors import BatchError
from emoface_core.controllers import JAW_OPEN, N_CONTROLLERS
from emoface_core.engines.base import EngineBase
from emoface_core.formats import load_animation


class FakeEngine(EngineBase):
    """Jaw follows the audio envelope; fast and deterministic."""

    name = "fake"
    wants_smoothing = False

    def infer(self, audio, timeline):
        n = audio.n_frames
        out = np.zeros((n, N_CONTROLLERS), np.float32)
        hop = max(1, audio.samples.size // max(n, 1))
        env = np.abs(audio.samples[: n * hop]).reshape(n, -1).mean(axis=1) if n else out[:, 0]
        out[:, JAW_OPEN] = env
        return out

    def describe(self):
        return {"name": self.name}


def _settings(out, **kw):
    return BatchSettings(output_dir=out, engine="procedural", **kw)


def _run(lines, out, formats=("json",), raw=False, mapping=None, **kw):
    """run_batch in this process with the fake engine."""
    settings = _settings(out, formats=formats, raw=raw, mapping=mapping)
    runner = InlineRunner(settings.resolved(), engine=FakeEngine())
    return run_batch(lines, settings, runner=runner, **kw)


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from emoface_core.testing.release_reference import ReleaseEmoFace, release_state_dict

    torch.manual_seed(7)
    ref = ReleaseEmoFace(
        transformers.Wav2Vec2Config(**TINY_WAV2VEC2),
        d_model=64,
        nhead=4,
        num_layers=2,
        dim_feedforward=128,
    ).eval()
    torch.nn.init.normal_(ref.out_fn.weight, std=0.05)
    path = tmp_path_factory.mktemp("ckpt") / "tiny_release_model.pth"
    torch.save(release_state_dict(ref), path)
    return path


@pytest.fixture
def voice(tmp_path):
    """Three good clips in sub-folders, a corrupt one and an empty one, plus a manifest."""
    vo = tmp_path / "vo"
    (vo / "guard").mkdir(parents=True)
    (vo / "merchant").mkdir()
    write_wav(vo / "guard" / "l01.wav", make_sine(1.0))
    write_wav(vo / "guard" / "l02.wav", make_sine(1.5, freq_hz=300))
    write_wav(vo / "merchant" / "l01.wav", make_sine(0.8, sample_rate=22_050), sample_rate=22_050)
    (vo / "corrupt.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEfmt garbage that is not audio")
    (vo / "empty.wav").write_bytes(b"")
    manifest = tmp_path / "lines.csv"
    manifest.write_text(
        "Audio,Emotion,Character,Output,Text\n"
        'vo/guard/l01.wav,angry,guard,guard/l01,"Halt, who goes there?"\n'
        'vo/guard/l02.wav,"happy@0,sad@0.8",guard,guard/l02,Oh.\n'
        "vo/corrupt.wav,neutral,ghost,ghost/corrupt,...\n"
        "vo/empty.wav,neutral,ghost,ghost/empty,...\n"
        "vo/merchant/l01.wav,hap:0.5,merchant,merchant/l01,Welcome!\n"
    )
    return tmp_path


def test_folder_keeps_subfolders_in_output_names(voice):
    lines = collect_lines([str(voice / "vo")])
    names = [ln.output for ln in lines]
    assert names == ["corrupt", "empty", "guard/l01", "guard/l02", "merchant/l01"]
    assert all(ln.emotion == "neutral" and ln.seed is None for ln in lines)


def test_glob_matches_relative_to_its_fixed_prefix(voice):
    lines = collect_lines([str(voice / "vo" / "**" / "l01.wav")])
    assert [ln.output for ln in lines] == ["guard/l01", "merchant/l01"]
    none = collect_lines([str(voice / "nowhere" / "*.wav")])
    assert len(none) == 1 and "matches no files" in none[0].problem


def test_csv_manifest_columns_aliases_and_relative_paths(voice):
    lines = load_manifest(voice / "lines.csv", emotion="sad")
    assert [ln.output for ln in lines] == [
        "guard/l01",
        "guard/l02",
        "ghost/corrupt",
        "ghost/empty",
        "merchant/l01",
    ]
    assert lines[0].audio == voice / "vo" / "guard" / "l01.wav"
    assert lines[1].emotion == "happy@0,sad@0.8" and lines[1].subject == "guard"
    assert lines[0].origin == f"{voice / 'lines.csv'}:2"
    assert not any(ln.problem for ln in lines)


def test_manifest_row_problems_fail_only_their_line(tmp_path):
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(
        "# comment lines and blank lines are skipped\n\n"
        '{"audio": "a.wav", "seed": 5, "emotion": "sad"}\n'
        '{"audio": "b.wav", "seed": "x"}\n'
        '{"file": "c.wav", "output": "../escape"}\n'
        "not json\n"
        '{"emotion": "happy"}\n'
        '["a", "list"]\n'
        '{"audio": "d.wav", "name": "a.json"}\n'
    )
    lines = collect_lines([str(manifest)], seed=9)
    by_line = {ln.origin.rsplit(":", 1)[1]: ln for ln in lines}
    assert by_line["3"].seed == 5 and not by_line["3"].problem and by_line["3"].emotion == "sad"
    assert "seed must be a whole number" in by_line["4"].problem
    assert "relative path inside the output folder" in by_line["5"].problem
    assert "not valid JSON" in by_line["6"].problem
    assert "no audio file given" in by_line["7"].problem
    assert "expected a JSON object" in by_line["8"].problem
    # "a.json" names the same output as a.wav: the later line is refused, not silently overwritten
    assert "already used by" in by_line["9"].problem and by_line["9"].output == "a"


def test_manifest_without_audio_column_fails_as_one_line_and_the_rest_go_on(tmp_path, voice):
    manifest = tmp_path / "m.csv"
    manifest.write_text("clip,emotion\na.wav,happy\n")
    with pytest.raises(BatchError, match=r"m.csv:1: the header row needs an audio column"):
        load_manifest(manifest)
    lines = collect_lines([str(manifest), str(voice / "vo")])
    assert "needs an audio column" in lines[0].problem
    assert lines[1:] and not any(ln.problem for ln in lines[1:])


def test_batch_seed_gives_each_line_its_own_stable_seed(voice):
    a = collect_lines([str(voice / "vo")], seed=1)
    b = collect_lines([str(voice / "vo")], seed=1)
    assert [ln.seed for ln in a] == [ln.seed for ln in b]
    assert len({ln.seed for ln in a}) == len(a)
    assert a[2].seed == derive_seed(1, "guard/l01") != derive_seed(2, "guard/l01")


def test_bakes_good_lines_reports_bad_ones_then_skips_on_rerun(voice):
    out = voice / "out"
    lines = collect_lines([str(voice / "lines.csv")], seed=0)
    report = _run(lines, out, formats=("json", "txt"))
    status = {r.line.output: r.status for r in report.results}
    assert status == {
        "guard/l01": "done",
        "guard/l02": "done",
        "ghost/corrupt": "failed",
        "ghost/empty": "failed",
        "merchant/l01": "done",
    }
    reasons = {r.line.output: r.reason for r in report.failed}
    assert "corrupt.wav: not a readable audio file" in reasons["ghost/corrupt"]
    assert "empty.wav" in reasons["ghost/empty"]
    assert not report.ok and report.count("done") == 3
    anim = load_animation(out / "guard" / "l02.json")
    assert anim.n_frames == 90 and anim.metadata["subject"] == "guard"
    assert anim.metadata["emotion"] == "happy@0,sad@0.8"
    assert np.loadtxt(out / "merchant" / "l01.txt", delimiter=",").shape == (48, N_CONTROLLERS)
    assert not (out / "ghost").exists()  # nothing at all for the failed lines

    mtimes = {p: p.stat().st_mtime_ns for p in out.rglob("*.json")}
    again = _run(lines, out, formats=("json", "txt"))
    assert again.count("skipped") == 3 and again.count("done") == 0 and again.count("failed") == 2
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.json")} == mtimes

    forced = _run(lines, out, formats=("json", "txt"), force=True)
    assert forced.count("done") == 3


def test_rerun_redoes_only_what_changed(voice):
    out = voice / "out"
    lines = collect_lines([str(voice / "lines.csv")])
    _run(lines, out)
    # A newer audio file, a changed emotion, a deleted output, and a changed setting.
    wav = voice / "vo" / "guard" / "l01.wav"
    os.utime(wav, ns=(time.time_ns() + 10**9,) * 2)
    changed = [
        ln if ln.output != "guard/l02" else BakeLine(ln.audio, ln.output, "fear", ln.subject)
        for ln in lines
    ]
    (out / "merchant" / "l01.json").unlink()
    report = _run(changed, out)
    assert {r.line.output for r in report.results if r.status == "done"} == {
        "guard/l01",
        "guard/l02",
        "merchant/l01",
    }
    assert report.count("skipped") == 0
    # The same lines, now baked: all skipped; raw output is a different setting: all redone.
    assert _run(changed, out).count("skipped") == 3
    assert _run(changed, out, raw=True).count("done") == 3


def test_editing_the_procedural_pose_file_rebakes(voice, monkeypatch):
    from importlib import resources

    out = voice / "out"
    lines = collect_lines([str(voice / "lines.csv")])
    assert _run(lines, out).count("done") == 3
    poses = voice / "my_poses.yaml"
    packaged = resources.files("emoface_core").joinpath("data", "emotion_poses.yaml")
    poses.write_bytes(packaged.read_bytes())
    monkeypatch.setenv("EMOFACE_POSES", str(poses))
    assert _run(lines, out).count("skipped") == 3  # the same content: still up to date
    poses.write_text(poses.read_text().replace("version:", "# tuned by an artist\nversion:", 1))
    assert _run(lines, out).count("done") == 3


def test_emotion_spec_is_checked_at_planning_and_canonicalised(voice):
    out = voice / "out"
    wav = voice / "vo" / "guard" / "l01.wav"
    lines = [BakeLine(wav, "a", "hap"), BakeLine(wav, "b", "grumpy")]
    settings = _settings(out).resolved()
    plan = plan_batch(lines, settings)
    assert plan.to_bake == [0] and plan.invalid == [1]
    assert "unknown emotion 'grumpy'" in plan.lines[1].problem
    _run(lines[:1], out)
    # "happy" is the same emotion as "hap": still up to date
    assert plan_batch([BakeLine(wav, "a", "happy")], settings).up_to_date == [0]


def test_stale_temporary_files_are_removed_and_a_busy_folder_is_refused(voice):
    out = voice / "out"
    (out / "guard").mkdir(parents=True)
    stale = out / "guard" / ".l01.json.abc123.part"
    stale.write_text("{half a fi")
    lines = collect_lines([str(voice / "vo" / "guard")])
    _run(lines, out)
    assert not stale.exists()
    with FolderLock(out), pytest.raises(BatchError, match="another emoface bake is writing"):
        _run(lines, out)


def test_mapped_csv_columns(voice):
    mapping_mod = pytest.importorskip("bridge.mapping")
    mapping = mapping_mod.load_mapping("metahuman_curves")
    out = voice / "out"
    lines = collect_lines([str(voice / "vo" / "guard" / "l01.wav")])
    _run(lines, out, formats=("csv",), mapping=mapping)
    text = (out / "l01.csv").read_text().splitlines()
    assert text[0].split(",") == ["time_s", *mapping.names]
    rows = np.loadtxt(out / "l01.csv", delimiter=",", skiprows=1)
    assert rows.shape == (60, 1 + len(mapping.names))
    np.testing.assert_allclose(rows[:3, 0], [0, 1 / 60, 2 / 60], atol=1e-6)


def _cli(*argv):
    from bridge.cli import main

    return main(list(map(str, argv)))


@pytest.mark.parametrize("name, text", [("m.csv", "audio,emotion\n\n"), ("m.jsonl", "# none\n")])
def test_empty_manifest_fails_instead_of_baking_nothing(tmp_path, capsys, name, text):
    manifest = tmp_path / name
    manifest.write_text(text)
    code = _cli("bake", manifest, "-o", tmp_path / "out", "--engine", "procedural", "--no-progress")
    assert code == 1
    assert f"{manifest}: the manifest lists no lines" in capsys.readouterr().err


def test_cli_folder_failure_names_the_file_once(tmp_path, capsys):
    (tmp_path / "vo").mkdir()
    write_wav(tmp_path / "vo" / "good.wav", make_sine(0.5))
    bad = tmp_path / "vo" / "broken.wav"
    bad.write_bytes(b"")
    code = _cli("bake", tmp_path / "vo", "-o", tmp_path / "out", "--engine", "procedural",
                "--no-progress")  # fmt: skip
    err = capsys.readouterr().err
    assert code == 1
    failed = [line for line in err.splitlines() if "broken.wav" in line]
    assert len(failed) == 1 and failed[0].count("broken.wav") == 2  # path, and soundfile's quote
    assert failed[0].strip().startswith(f"{bad}: not a readable audio file")


def test_cli_manifest_exit_code_summary_and_report(voice, tiny_ckpt, capsys):
    out = voice / "out"
    code = _cli(
        "bake",
        voice / "lines.csv",
        "-o",
        out,
        "--checkpoint",
        tiny_ckpt,
        "--format",
        "all",
        "--seed",
        "1",
        "--report",
        voice / "report.json",
    )
    err = capsys.readouterr().err
    assert code == 1
    assert "failed lines:" in err and "corrupt.wav: not a readable audio file" in err
    assert "Traceback" not in err
    for name in ("guard/l01", "guard/l02", "merchant/l01"):
        for ext in ("txt", "json", "csv"):
            assert (out / f"{name}.{ext}").is_file()
    report = json.loads((voice / "report.json").read_text())
    assert report["counts"] == {"done": 3, "skipped": 0, "failed": 2}
    assert report["engine"] == "emoface"

    code = _cli(
        "bake",
        voice / "lines.csv",
        "-o",
        out,
        "--checkpoint",
        tiny_ckpt,
        "--format",
        "all",
        "--seed",
        "1",
    )
    err = capsys.readouterr().err
    assert code == 1 and "3 line(s) up to date, skipped" in err
    assert (out / JOURNAL_NAME).is_file()


def test_cli_all_good_exits_zero_and_single_file_rules(voice, tiny_ckpt, capsys):
    out = voice / "out"
    assert _cli("bake", voice / "vo" / "guard", "-o", out, "--checkpoint", tiny_ckpt) == 0
    assert sorted(p.name for p in out.glob("*.json")) == ["l01.json", "l02.json"]
    capsys.readouterr()
    # -o naming a file with a batch input, or an unknown extension, are one-line errors
    ckpt = ("--checkpoint", tiny_ckpt)
    assert _cli("bake", voice / "vo" / "guard", "-o", voice / "x.json", *ckpt) == 1
    assert "-o names a file, but the inputs are a batch" in capsys.readouterr().err
    wav = voice / "vo" / "guard" / "l01.wav"
    assert _cli("bake", wav, "-o", voice / "x.mp4", "--checkpoint", tiny_ckpt) == 1
    assert "unknown output extension .mp4" in capsys.readouterr().err
    assert _cli("bake", wav, "-o", voice / "x.json", "--format", "txt", *ckpt) == 1
    assert "--format applies to an output folder" in capsys.readouterr().err


def test_two_workers_match_one(voice, tiny_ckpt):
    lines = collect_lines([str(voice / "lines.csv")], seed=4)
    reports = {}
    for jobs in (1, 2):
        out = voice / f"out{jobs}"
        settings = BatchSettings(
            output_dir=out,
            engine="emoface",
            checkpoint=str(tiny_ckpt),
            device="cpu",
            formats=("txt",),
        )
        reports[jobs] = run_batch(lines, settings, jobs=jobs)
    for jobs, report in reports.items():
        statuses = [r.status for r in report.results]
        assert statuses == ["done", "done", "failed", "failed", "done"], jobs
    for name in ("guard/l01", "guard/l02", "merchant/l01"):
        a = np.loadtxt(voice / "out1" / f"{name}.txt", delimiter=",")
        b = np.loadtxt(voice / "out2" / f"{name}.txt", delimiter=",")
        np.testing.assert_allclose(a, b, atol=2e-6)


def _spawn_bake(tmp_path, ckpt, n_lines, jobs=1):
    vo = tmp_path / "many"
    vo.mkdir()
    for i in range(n_lines):
        write_wav(vo / f"line{i:03d}.wav", make_sine(1.0, freq_hz=150 + i))
    out = tmp_path / "out"
    args = [
        "bake",
        str(vo),
        "-o",
        str(out),
        "--checkpoint",
        str(ckpt),
        "--device",
        "cpu",
        "--format",
        "all",
        "--jobs",
        str(jobs),
        "--no-progress",
    ]
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    proc = subprocess.Popen(
        [sys.executable, "-m", "bridge.cli", *args],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    return proc, args, out


def _wait_for_outputs(proc, out, n, timeout_s=60.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and proc.poll() is None:
        if len(list(out.glob("*.csv"))) >= n:
            return
        time.sleep(0.01)
    pytest.fail(f"bake produced fewer than {n} outputs in {timeout_s} s (exit {proc.poll()})")


def _assert_complete_outputs(out):
    """Every visible output parses in full; returns the baked names."""
    names = set()
    for p in out.glob("*.json"):
        assert load_animation(p).n_frames == 60, p
        names.add(p.stem)
    for p in out.glob("*.txt"):
        assert np.loadtxt(p, delimiter=",").shape == (60, N_CONTROLLERS), p
    for p in out.glob("*.csv"):
        assert np.loadtxt(p, delimiter=",", skiprows=1).shape == (60, N_CONTROLLERS + 4), (
            p
        )  # + head
    return names


@pytest.mark.parametrize(
    "sig", [signal.SIGTERM, pytest.param(signal.SIGINT, marks=pytest.mark.slow)]
)
def test_killing_a_bake_leaves_no_partial_outputs(tmp_path, tiny_ckpt, sig, capsys):
    n_lines = 16
    proc, args, out = _spawn_bake(tmp_path, tiny_ckpt, n_lines)
    try:
        _wait_for_outputs(proc, out, 2)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    assert not list(out.rglob("*.part"))
    done = _assert_complete_outputs(out)
    assert 2 <= len(done) < n_lines
    # The rerun skips what was finished and bakes the rest.
    assert _cli(*args) == 0
    assert f"{len(done)} line(s) up to date" in capsys.readouterr().err
    assert len(_assert_complete_outputs(out)) == n_lines


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
def test_hard_kill_leaves_only_hidden_temporaries_that_the_rerun_removes(tmp_path, tiny_ckpt):
    proc, args, out = _spawn_bake(tmp_path, tiny_ckpt, n_lines=12, jobs=2)
    try:
        _wait_for_outputs(proc, out, 1)
        proc.kill()
        proc.communicate(timeout=30)
    finally:
        proc.kill()
    _assert_complete_outputs(out)
    assert all(p.name.startswith(".") for p in out.rglob("*.part"))
    assert _cli(*args) == 0
    assert not list(out.rglob("*.part"))
    assert len(_assert_complete_outputs(out)) == 12


def test_ray_runner_matches_local_workers(voice):
    ray = pytest.importorskip("ray")
    pytest.importorskip("emoface_core.engines.procedural.engine")
    lines = collect_lines([str(voice / "lines.csv")], seed=2)
    reports = {}
    for name, address in (("local", None), ("ray", "local")):
        settings = BatchSettings(output_dir=voice / name, engine="procedural", formats=("json",))
        try:
            reports[name] = run_batch(lines, settings, jobs=2, force=True, ray_address=address)
        finally:
            if address:
                ray.shutdown()
    statuses = {n: [(r.line.output, r.status) for r in rep.results] for n, rep in reports.items()}
    assert statuses["ray"] == statuses["local"]
    assert [r.status for r in reports["ray"].results].count("done") == 3
    ray_reasons = [r.reason for r in reports["ray"].failed]
    # Failures name the user's files, not the copies shipped to the workers.
    assert ray_reasons == [r.reason for r in reports["local"].failed]
    for name in ("guard/l01", "guard/l02", "merchant/l01"):
        assert (voice / "ray" / f"{name}.json").read_text() == (
            voice / "local" / f"{name}.json"
        ).read_text()
