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


def one_error_line(capsys, prefix: str) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(prefix), err
    return err[0]


def test_cache_arguments_are_checked_before_anything_is_written(synthetic_bp4d, tmp_path, capsys):
    out = tmp_path / "cache"
    args = ["cache", "--reader", "synthetic", "--root", str(synthetic_bp4d), "--out", str(out)]
    assert main([*args, "--size", "-3"]) == 2
    one_error_line(capsys, "aunce cache: error: cache size must be at least 16 pixels, got -3")
    out.write_text("a file where the cache folder should go")
    assert main([*args, "--size", "32"]) == 2
    one_error_line(capsys, f"aunce cache: error: {out}: a file is in the way (a cache is a folder)")
    assert out.read_text().startswith("a file") and sorted(tmp_path.iterdir()) == [out]


def test_a_full_disk_is_one_line_naming_the_file(tmp_path, monkeypatch, capsys):
    import errno
    from pathlib import Path

    def full(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")  # as write() raises it: no name

    monkeypatch.setattr(Path, "write_text", full)
    out = tmp_path / "results" / "config.yaml"
    assert main(["write-config", "--settings", "{}", "--out", str(out)]) == 1
    one_error_line(capsys, f"aunce write-config: error: {out}: No space left on device")
    assert list((tmp_path / "results").iterdir()) == []  # no temporary file left


def test_a_writer_failing_on_a_full_disk_is_reported_as_one(tmp_path, monkeypatch):
    """torch.save reports a full disk as a RuntimeError; the atomic writer names it ENOSPC."""
    import errno

    import pytest

    from aunce import io

    monkeypatch.setattr(io, "_disk_full", lambda folder: True)
    with pytest.raises(OSError) as err, io.atomic_path(tmp_path / "encoder.pt"):
        raise RuntimeError("PytorchStreamWriter failed writing file data/0: file write failed")
    assert err.value.errno == errno.ENOSPC and err.value.filename == str(tmp_path / "encoder.pt")
    monkeypatch.setattr(io, "_disk_full", lambda folder: False)
    with pytest.raises(RuntimeError), io.atomic_path(tmp_path / "encoder.pt"):
        raise RuntimeError("another failure")


def test_a_cache_on_a_full_disk_names_its_array(synthetic_bp4d, tmp_path, monkeypatch, capsys):
    import errno
    import os

    def full(fd, offset, length):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", full)
    out = tmp_path / "cache"
    args = ["--reader", "synthetic", "--root", str(synthetic_bp4d), "--out", str(out)]
    assert main(["cache", *args, "--size", "32"]) == 1
    one_error_line(
        capsys, f"aunce cache: error: {tmp_path}/.cache.partial/images.npy: No space left on device"
    )
    assert list(tmp_path.iterdir()) == []  # no cache and no partial folder: the space is freed


def test_a_diverging_loss_names_method_fold_seed_and_epoch(bp4d_cache, tmp_path, capsys):
    import json

    settings = {
        "dataset": "bp4d",
        "encoder": {"name": "megraph", "size": "tiny", "feature_dim": 8},
        "method": {"loss": "tests.example_method:smoothed_wce", "kind": "classification",
                   "options": {"smoothing": float("nan")}},
        "method_name": "nan_wce",
        "pretrain": {"epochs": 1, "batch_size": 16, "lr": 1e-3, "weight_decay": 0.0,
                     "betas": [0.9, 0.999], "lr_step_epochs": [], "lr_step_factor": 0.1,
                     "color_jitter": 0.0, "blur": 0.0},
        "image": {"cache_size": 64, "input_size": 32, "normalize": "imagenet"},
        "device": "cpu", "amp": "none", "threads": 1,
    }  # fmt: skip
    args = ["pretrain", "--cache", str(bp4d_cache), "--settings", json.dumps(settings)]
    assert main([*args, "--runs", "1:0", "--out", str(tmp_path / "out")]) == 2
    one_error_line(
        capsys,
        "aunce pretrain: error: method nan_wce fold 1 seed 0 epoch 1: the loss is nan (NaN or "
        "infinite in a step of this epoch; try a lower pretrain.lr or amp: none)",
    )


def _subcommands():
    import argparse

    from aunce.cli import build_parser

    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return parser, action.choices


def test_every_command_has_a_description_examples_and_help_for_every_argument():
    import shlex

    parser, commands = _subcommands()
    assert "examples:" in parser.format_help()
    for name, sub in commands.items():
        text = sub.format_help()
        assert sub.description and len(sub.description) > 40, name
        assert "examples:" in text, name
        for action in sub._actions:
            assert action.help, f"aunce {name}: {'/'.join(action.option_strings) or action.dest}"
        examples = [line.strip() for line in sub.epilog.splitlines()[1:]]
        assert examples, name
        for example in examples:  # each example parses as written
            words = shlex.split(example.split("#")[0])
            if words[0] == "watch":
                words = words[3:]
            assert words[:2] == ["aunce", name], example
            parser.parse_args(["{}" if w.startswith("$(") else w for w in words[1:]])
    top = [line.split("#")[0].split() for line in parser.epilog.splitlines()[1:]]
    for words in top:
        if "--help" not in words:
            parser.parse_args(words[1:])
