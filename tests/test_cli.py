import subprocess
import sys

from aunce.cli import main


def test_user_errors_exit_2_with_one_line(tmp_path, capsys):
    assert main(["check-config", str(tmp_path / "nope.yaml")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"aunce check-config: error: config file '{tmp_path / 'nope.yaml'}' not found"]
    assert (
        main(
            [
                "pretrain",
                "--cache",
                str(tmp_path),
                "--settings",
                "{}",
                "--folds",
                "1",
                "--seeds",
                "1",
                "--out",
                str(tmp_path / "o"),
            ]
        )
        == 2
    )
    assert "not a complete cache" in capsys.readouterr().err


def test_bad_settings_json_is_a_usage_error(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "aunce",
            "linear-eval",
            "--embeddings",
            "x",
            "--settings",
            "{oops",
            "--folds",
            "1",
            "--seeds",
            "1",
            "--out",
            "o",
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and "--settings is not valid JSON" in proc.stderr
