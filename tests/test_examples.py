import subprocess
import sys

from conftest import REPO_ROOT, make_sine, write_wav


def test_quickstart_example_bakes_maps_and_streams(tmp_path):
    wav = write_wav(tmp_path / "line.wav", make_sine(1.0))
    out = tmp_path / "line.json"
    result = subprocess.run(
        [
            sys.executable,
            str(REPO_ROOT / "examples" / "quickstart.py"),
            str(wav),
            "--engine",
            "procedural",
            "--emotion",
            "happy",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "received 60" in result.stdout and "max |received - mapped| 0.0e+00" in result.stdout
    assert out.is_file()
