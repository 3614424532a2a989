import subprocess
import sys

import pytest

from bridge.cli import main


def test_verbose_after_the_subcommand_shows_the_traceback(tmp_path, capsys):
    # The README says "add -v for the traceback"; users put it at the end of the command.
    missing = tmp_path / "missing.wav"
    assert main(["bake", str(missing), "-o", str(tmp_path / "x.json"), "-v"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and f"{missing}: no such audio file" in err
    assert main(["mapping", "validate", str(tmp_path / "none.yaml"), "-v"]) == 1
    assert main(["bake", str(missing), "-o", str(tmp_path / "x.json")]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.strip().endswith("no such audio file")


def test_output_piped_into_a_reader_that_stops_early_is_not_an_error():
    # `emoface mapping show metahuman_curves | head -1` used to end with
    # "emoface: error: [Errno 32] Broken pipe".
    proc = subprocess.Popen(
        [sys.executable, "-m", "bridge.cli", "mapping", "show", "metahuman_curves"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    proc.stdout.close()  # the reader is gone before the command writes anything
    _, err = proc.communicate(timeout=60)
    assert b"Broken pipe" not in err and b"Traceback" not in err


@pytest.mark.parametrize(
    "command",
    [
        ["receive"],
        ["mapping", "new"],
        ["mapping", "show"],
        ["mapping", "schema"],
        ["unreal", "install"],
        ["unreal", "check"],
    ],
)
def test_help_shows_only_meaningful_defaults(command, capsys):
    with pytest.raises(SystemExit):
        main([*command, "--help"])
    out = capsys.readouterr().out
    for noise in ("(default: None)", "(default: False)", "(default: [])"):
        assert noise not in out


@pytest.mark.parametrize(
    "command",
    [["receive"], ["bake"], ["live"], ["serve"], ["stream"], ["train"], ["unreal", "install"]],
)
def test_help_descriptions_are_wrapped_and_examples_kept(command, capsys):
    with pytest.raises(SystemExit):
        main([*command, "--help"])
    out = capsys.readouterr().out
    # Unindented prose fits the 100-column layout; indented lines (examples) are left as written.
    too_long = [line for line in out.splitlines() if len(line) > 100 and not line.startswith(" ")]
    assert not too_long
