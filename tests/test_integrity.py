"""Nothing silently wrong, nothing run that was not meant to (docs/recovery.md): content hashes
checked before a file is used, caches checked and marked when damaged, a checkpoint's
fingerprint by the content of what the run reads, loading that never runs code, config errors on
one line, names that cannot reach a shell, SIGTERM in every step, `aunce verify`."""

import logging
import os
import shutil
import signal
import subprocess

import pytest
import torch
import yaml
from conftest import REPO, SCHEMA

from aunce import AunceError, train
from aunce import io as aio
from aunce.cli import main
from aunce.config import check_config, load_config

SMOKE = REPO / "config" / "smoke.yaml"


def flip(path, offset=None):
    """Change one byte of ``path`` in place (same size), by default in the middle."""
    data = bytearray(path.read_bytes())
    i = len(data) // 2 if offset is None else offset
    data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def garble_tensor(path):
    """Change one byte in the middle of the largest tensor of a torch.save file: torch.load reads
    the archive without checking its CRCs, so the file still loads, with one wrong value."""
    import struct
    import zipfile

    with zipfile.ZipFile(path) as archive:
        info = max((i for i in archive.infolist() if "/data/" in i.filename),
                   key=lambda i: i.file_size)  # fmt: skip
    with open(path, "rb") as fh:
        fh.seek(info.header_offset + 26)  # the local header's name and extra field lengths
        name, extra = struct.unpack("<HH", fh.read(4))
    flip(path, info.header_offset + 30 + name + extra + info.file_size // 2)


# --- content hashes -------------------------------------------------------------------------------
def test_a_digest_is_a_sha256sum_sidecar_and_any_change_is_found(tmp_path):
    path = tmp_path / "weights.bin"
    path.write_bytes(os.urandom(4096))
    digest = aio.write_digest(path)
    assert aio.digest_path(path).read_text() == f"{digest}  weights.bin\n"
    assert aio.check_digest(path) == digest == aio.file_sha256(path)
    if shutil.which("sha256sum"):  # the same format as the standard tool
        assert subprocess.run(["sha256sum", "-c", "weights.bin.sha256"], cwd=tmp_path,
                              capture_output=True).returncode == 0  # fmt: skip
    flip(path)
    with pytest.raises(aio.DamagedFile, match=r"weights.bin: damaged, its bytes do not match the "
                       r"SHA-256 in weights.bin.sha256 .*make run"):  # fmt: skip
        aio.check_digest(path)
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(aio.DamagedFile, match=r"changed after it was written: 100 bytes now"):
        aio.check_digest(path)
    aio.digest_path(path).unlink()
    with pytest.raises(aio.DamagedFile, match=r"no content hash beside it \(weights.bin.sha256"):
        aio.check_digest(path, remedy="do this")


def test_atomic_path_writes_the_sidecar_with_the_file(tmp_path):
    path = tmp_path / "a" / "model.pt"
    with aio.atomic_path(path, digest=True) as tmp:
        tmp.write_bytes(b"x" * 1000)
        assert not aio.digest_path(path).exists()  # nothing in place before the block succeeds
    assert aio.check_digest(path) == aio.file_sha256(path)
    assert sorted(p.name for p in path.parent.iterdir()) == ["model.pt", "model.pt.sha256"]


def test_settings_files_are_named_by_their_content(tmp_path):
    a = aio.content_file(tmp_path, "pretrain", '{"lr": 0.001}\n')
    assert a.parent == tmp_path and a.name.startswith("pretrain-") and len(a.stem) == 9 + 16
    before = a.stat().st_mtime_ns
    assert aio.content_file(tmp_path, "pretrain", '{"lr": 0.001}\n') == a
    assert a.stat().st_mtime_ns == before  # the same text: not written again
    b = aio.content_file(tmp_path, "pretrain", '{"lr": 0.002}\n')
    assert b != a and b.read_text() == '{"lr": 0.002}\n'
    a.write_text("damaged")  # a file whose content is not its name's is written again
    assert (
        aio.content_file(tmp_path, "pretrain", '{"lr": 0.001}\n').read_text() == '{"lr": 0.001}\n'
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([a.name, b.name])


def test_a_job_reads_its_settings_from_a_file_or_inline(tmp_path, capsys):
    from aunce.cli import _settings

    path = aio.content_file(tmp_path, "x", '{"a": 1}')
    assert _settings(str(path)) == {"a": 1} == _settings('{"a": 1}')
    import argparse

    (tmp_path / "bad.json").write_text('{"a": 1,\n}')
    with pytest.raises(argparse.ArgumentTypeError, match=r"bad.json: line 2: not valid JSON"):
        _settings(str(tmp_path / "bad.json"))
    with pytest.raises(argparse.ArgumentTypeError, match=r"nope.json: No such file"):
        _settings(str(tmp_path / "nope.json"))
    path.write_text('{"a": 2}')  # changed after it was written: its name no longer says it
    with pytest.raises(argparse.ArgumentTypeError, match=r"damaged, its content does not match"):
        _settings(str(path))


# --- checkpoints and encoder.pt: verified, loaded without running code -----------------------------
def settings_for(method="wce", epochs=2, pretrained=None):
    cfg = load_config(SMOKE)
    encoder = {"name": "megraph", "size": "tiny", "feature_dim": 16}
    if pretrained:
        encoder["pretrained"] = str(pretrained)
    return {"dataset": "bp4d", "encoder": encoder, "method": cfg["methods"][method],
            "method_name": method, "pretrain": dict(cfg["pretrain"], epochs=epochs, batch_size=16),
            "image": cfg["image"], "device": "cpu", "amp": "none", "threads": 1}  # fmt: skip


class Stop(Exception):
    pass


def stopped_after_one_epoch(cache, settings, out, monkeypatch):
    """pretrain that fails at the first step of epoch 2: a checkpoint of epoch 1 is left."""
    real, calls = train.train_step, {"n": 0}

    def step(run, batch, loop):
        calls["n"] += 1
        if calls["n"] == 3:  # 2 steps per epoch (32 training frames of fold 1, batches of 16)
            raise Stop
        return real(run, batch, loop)

    monkeypatch.setattr(train, "train_step", step)
    with pytest.raises(Stop):
        train.pretrain(cache, settings, [("1", 0)], out)
    monkeypatch.undo()
    return train.checkpoint_root(out) / "fold-1" / "seed-0" / train.CHECKPOINT


def test_a_garbled_checkpoint_is_not_resumed(bp4d_cache, tmp_path, monkeypatch, caplog):
    caplog.set_level(logging.INFO, logger="aunce.train")
    out = tmp_path / "pretrain"
    checkpoint = stopped_after_one_epoch(bp4d_cache, settings_for(), out, monkeypatch)
    garble_tensor(checkpoint)  # torch.load would not notice
    train.pretrain(bp4d_cache, settings_for(), [("1", 0)], out)
    assert f"{checkpoint}: damaged, its bytes do not match the SHA-256" in caplog.text
    assert "training method wce fold 1 seed 0 afresh" in caplog.text
    assert "resumed" not in caplog.text and "restored" not in caplog.text


def sha256sum(path):
    """The sidecar `sha256sum path > path.sha256` writes."""
    import hashlib

    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    path.with_name(path.name + ".sha256").write_text(f"{digest}  {path.name}\n")


class Payload:
    """Unpickling this runs code (what a planted pickle does): it creates the file ``marker``."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_planted_checkpoint_or_model_does_not_run_code(bp4d_cache, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="aunce.train")
    out, marker = tmp_path / "pretrain", tmp_path / "pwned"
    planted = train.checkpoint_root(out) / "fold-1" / "seed-0" / train.CHECKPOINT
    planted.parent.mkdir(parents=True)
    torch.save({"format": train.CHECKPOINT_FORMAT, "payload": Payload(marker)}, planted)
    sha256sum(planted)  # whoever plants a file can write its sidecar too
    train.pretrain(bp4d_cache, settings_for(epochs=1), [("1", 0)], out)
    assert not marker.exists()
    assert f"{planted}: unreadable checkpoint" in caplog.text and "afresh" in caplog.text
    model = out / "fold-1" / "seed-0" / "encoder.pt"
    encoder, _ = train.load_encoder(model, torch.device("cpu"))  # a real one loads
    torch.save({"encoder": {"name": "megraph"}, "payload": Payload(marker)}, model)
    sha256sum(model)
    with pytest.raises(AunceError, match=r"encoder.pt: not an encoder.pt of aunce"):
        train.load_encoder(model, torch.device("cpu"))
    from aunce.encoders.blocks import load_pretrained

    with pytest.raises(AunceError, match=r"could not be read safely"):
        load_pretrained(torch.nn.Linear(2, 2), model, what="test")
    assert not marker.exists()


def test_no_module_loads_with_weights_only_false():
    offenders = [f"{p.relative_to(REPO)}:{i}" for p in (REPO / "aunce").rglob("*.py")
                 for i, line in enumerate(p.read_text().splitlines(), 1)
                 if "weights_only=False" in line or "pickle.load" in line]  # fmt: skip
    assert offenders == []


def test_a_damaged_encoder_stops_the_step_naming_it(bp4d_cache, tmp_path, capsys):
    out = tmp_path / "pretrain"
    train.pretrain(bp4d_cache, settings_for(epochs=1), [("1", 0)], out)
    model = out / "fold-1" / "seed-0" / "encoder.pt"
    garble_tensor(model)
    cfg = load_config(SMOKE)
    embed = {"dataset": "bp4d", "image": cfg["image"], "device": "cpu", "amp": "none"}
    argv = ["embed", "--cache", str(bp4d_cache), "--models", str(out), "--settings",
            json_dumps(embed), "--runs", "1:0", "--out", str(tmp_path / "embed")]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"aunce embed: error: {model}: damaged")
    assert "delete it and its .sha256 and run the workflow again (make run)" in err[0]


def json_dumps(obj):
    import json

    return json.dumps(obj)


def test_a_checkpoint_fingerprint_holds_the_content_of_the_starting_weights(bp4d_cache, tmp_path):
    """The same path, other weights (a warm start trained again): another fingerprint."""
    from aunce.data.cache import open_cache
    from aunce.encoders import create_encoder

    cache = open_cache(bp4d_cache)
    weights = tmp_path / "warmstart" / "backbone.pt"

    def fingerprint(seed):
        torch.manual_seed(seed)
        backbone = create_encoder("megraph", 12, size="tiny", feature_dim=16, input_size=32)
        with aio.atomic_path(weights, digest=True) as tmp, open(tmp, "wb") as fh:
            torch.save({"state_dict": backbone.backbone.state_dict()}, fh)
        loop = train.Loop(cache, cache.labels, torch.device("cpu"), None, False, 0)
        train_idx, _ = cache.split("1")
        w, minority = train.training_statistics(cache, train_idx, "training split")
        run = train.setup_run(
            loop, train_idx, w, minority, settings_for(pretrained=weights), "1", 0
        )
        return train.run_fingerprint(run, cache)

    first = fingerprint(0)
    assert fingerprint(0) == first
    assert fingerprint(1) != first


# --- caches: sizes on every open, SHA-256 once per process; damaged ones marked so ---------------
@pytest.fixture
def cache_copy(bp4d_cache, tmp_path):
    from aunce.data import cache as cache_module

    cache_module._VERIFIED.clear()  # this process checked the session's cache: check the copy again
    return shutil.copytree(bp4d_cache, tmp_path / "bp4d")


def test_a_truncated_cache_is_found_by_its_sizes_and_marked_damaged(cache_copy):
    from aunce.data import cache as cache_module

    images = cache_copy / "images.npy"
    size = images.stat().st_size
    os.truncate(images, size // 2)  # a copy cut short
    note = cache_copy.with_name("bp4d.damaged.txt")
    rebuilt = r"run the workflow again \(make run\), which builds it again"
    with pytest.raises(
        AunceError,
        match=rf"^{cache_copy}: damaged, images.npy has .* marked so \({note}\): {rebuilt}",
    ):
        cache_module.open_cache(cache_copy)
    assert note.read_text() == f"images.npy has {size // 2} bytes, {size} when it was built\n"
    assert cache_module.cache_problem(cache_copy) == f"marked damaged ({note.read_text().strip()})"
    with pytest.raises(AunceError, match=rf"{cache_copy}: marked damaged \(images.npy has"):
        cache_module.open_cache(cache_copy)  # refused until built again


def test_a_cache_changed_in_place_is_found_by_its_sha256(cache_copy, monkeypatch):
    from aunce.data import cache as cache_module

    flip(cache_copy / "images.npy")  # a byte changed in place: the sizes are right
    with pytest.raises(AunceError, match=r"images.npy does not match its SHA-256 in cache.json"):
        cache_module.open_cache(cache_copy)
    assert "images.npy does not match" in cache_copy.with_name("bp4d.damaged.txt").read_text()


def test_a_cache_built_again_is_no_longer_marked(cache_copy):
    from aunce.data import cache as cache_module

    cache_module.mark_damaged(cache_copy, "a test")
    assert cache_module.cache_problem(cache_copy) == "marked damaged (a test)"
    meta = cache_copy / "cache.json"
    meta.write_bytes(meta.read_bytes())  # what a build does last: cache.json written anew
    assert cache_module.cache_problem(cache_copy) is None


def test_a_cache_is_hashed_once_per_process_while_unchanged(cache_copy, monkeypatch):
    from aunce.data import cache as cache_module

    cache_module.open_cache(cache_copy)
    calls = []
    real = cache_module.sha256_file
    monkeypatch.setattr(cache_module, "sha256_file", lambda p: calls.append(p) or real(p))
    cache_module.open_cache(cache_copy)
    assert calls == []
    os.utime(cache_copy / "manifest.csv")  # touched: hashed again
    cache_module.open_cache(cache_copy)
    assert len(calls) == 4


def test_a_cache_without_sizes_is_checked_against_its_array_headers(cache_copy):
    """A cache built before cache.json recorded sizes: the .npy headers give them."""
    import json

    from aunce.data.cache import cache_problem

    meta = json.loads((cache_copy / "cache.json").read_text())
    del meta["bytes"]
    (cache_copy / "cache.json").write_text(json.dumps(meta))
    assert cache_problem(cache_copy) is None
    with open(cache_copy / "landmarks.npy", "ab") as fh:
        fh.write(b"\0" * 8)
    assert "landmarks.npy: " in cache_problem(cache_copy) and "expected" in cache_problem(
        cache_copy
    )


def test_verify_checks_a_results_folder_and_fix_removes_what_is_damaged(cache_copy, tmp_path,
                                                                        capsys):  # fmt: skip
    results = tmp_path / "results"
    (results / "cache").mkdir(parents=True)
    shutil.move(cache_copy, results / "cache" / "bp4d")
    model = results / "pretrain" / "encoder.pt"
    with aio.atomic_path(model, digest=True) as tmp:
        tmp.write_bytes(os.urandom(2048))
    assert main(["verify", str(results)]) == 0
    assert capsys.readouterr().out.strip().endswith("2 file(s) and cache(s) checked, 0 damaged")
    flip(model)
    flip(results / "cache" / "bp4d" / "manifest.csv", offset=10)
    assert main(["verify", str(results)]) == 2
    out, err = capsys.readouterr()
    assert (
        f"{model}: damaged, its bytes do not match" in out
        and "manifest.csv does not match its SHA-256" in out
    )
    assert "2 damaged file(s)" in err and "aunce verify --fix" in err
    note = results / "cache" / "bp4d.damaged.txt"
    assert model.exists() and not note.exists()  # only reported
    assert main(["verify", "--fix", str(results)]) == 0
    assert not model.exists() and not aio.digest_path(model).exists()
    assert "manifest.csv does not match" in note.read_text()  # make run builds it again


# --- config errors: one line naming the file and the line ----------------------------------------
@pytest.mark.parametrize(
    "content, message",
    [
        (b"\x7fELF\x02\x01\x01\x00\x00\x00binary", "a binary file (byte 7 is NUL), not a YAML config"),
        (b"seeds: [1]\ndevice: cpu\npretrain:\n\tepochs: 3\n",
         "line 4: a tab character; YAML indents with spaces only"),
        (b"seeds: [1, 2\ndevice: cpu\n", "line 2: invalid YAML (expected ',' or ']', but got"),
        (b"seeds: [1]\ndevice: \xff\n", "line 2: not UTF-8 text (byte 0xff at offset 19)"),
        (b"- 1\n- 2\n", "a config is a mapping of keys to values (`key: value` lines), this file "
                        "holds a list"),
        (None, "config file '{path}' not found"),
    ],
    ids=["binary", "tab", "invalid", "latin1", "list", "missing"],
)  # fmt: skip
def test_a_config_that_does_not_load_is_one_line(tmp_path, capsys, content, message):
    path = tmp_path / "bad.yaml"
    if content is not None:
        path.write_bytes(content)
    assert main(["check-config", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("aunce check-config: error: ")
    assert str(path) in err[0] and message.format(path=path) in err[0]


def test_numbers_written_as_yaml_1_2_writes_them_are_numbers(tmp_path):
    text = SMOKE.read_text().replace("lr: 1.0e-3", "lr: 1e-3")
    assert "lr: 1e-3" in text
    path = tmp_path / "c.yaml"
    path.write_text(text + "linear_eval: {epochs: 5, batch_size: 64, lr: 1E-2, weight_decay: 0}\n")
    cfg = load_config(path)
    assert cfg["pretrain"]["lr"] == 0.001 and cfg["linear_eval"]["lr"] == 0.01
    cfg = yaml.safe_load(SMOKE.read_text())
    cfg["pretrain"]["epochs"] = "1e1"  # an integer key: not read as 10.0, refused
    with pytest.raises(AunceError, match=r"pretrain.epochs: '1e1' is not of type 'integer'"):
        check_config(cfg, SCHEMA)


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda c: c["encoders"].update(resnet18={"size": "tiny"}),
         "encoders: 'resnet18' is not an encoder of aunce (known: jaanet, megraph, resnet50, roi"),
        (lambda c: c["datasets"]["bp4d"].update(source="bp4x"),
         "datasets.bp4d.source: 'bp4x' is not one of ['synthetic', 'bp4d', 'disfa', 'gft'"),
        (lambda c: c["methods"]["wce"].update(loss="wcee"),
         "methods.wce.loss: 'wcee' is not aunce, wce, wfl or the import path"),
        (lambda c: c["datasets"].update({"x$(touch pwned)": c["datasets"]["bp4d"]}),
         "datasets: 'x$(touch pwned)' is not a valid name: letters, digits, '_', '-' and '.'"),
        (lambda c: c["tables"].update({"t;touch pwned": c["tables"]["table2"]}),
         "tables: 't;touch pwned' is not a valid name"),
        (lambda c: c["methods"].update({"-m": {"loss": "wce"}}), "methods: '-m' is not a valid name"),
        (lambda c: c["datasets"].update({"..": c["datasets"]["bp4d"]}),
         "datasets: '..' is not a valid name"),
    ],
    ids=["encoder", "reader", "loss", "dataset-name", "table-name", "method-name", "dot-dot"],
)  # fmt: skip
def test_unknown_names_and_names_a_shell_would_read_are_refused(tmp_path, capsys, edit, message):
    cfg = yaml.safe_load(SMOKE.read_text())
    edit(cfg)
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["check-config", str(path)]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and "does not match '^" not in err


def test_the_schema_lists_the_registered_encoders():
    from aunce.encoders import list_encoders

    schema = yaml.safe_load(SCHEMA.read_text())
    assert sorted(schema["properties"]["encoders"]["propertyNames"]["enum"]) == sorted(
        list_encoders()
    )


# --- SIGTERM: every step stops with a line saying what it saved, exit status 2 ------------------
@pytest.fixture
def sigterm_caught():
    """A SIGTERM handler of the test's own while it runs: a command that sets none does not stop
    pytest (the SIGTERM is only counted), and one that sets its own must put this one back."""
    received = []

    def count(signum, frame):
        received.append(signum)

    previous = signal.signal(signal.SIGTERM, count)
    yield count, received
    signal.signal(signal.SIGTERM, previous)


def test_sigterm_while_embedding_says_what_was_saved_and_exits_2(
    bp4d_cache, tmp_path, capsys, monkeypatch, sigterm_caught
):
    from aunce import evaluate

    models = tmp_path / "pretrain"
    train.pretrain(bp4d_cache, settings_for(epochs=1), [("1", 0), ("2", 0)], models)
    real, calls = evaluate.embedding_chunks, {"n": 0}

    def chunks(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:  # the first array of the second run
            os.kill(os.getpid(), signal.SIGTERM)
        return real(*args, **kwargs)

    monkeypatch.setattr(evaluate, "embedding_chunks", chunks)
    cfg = load_config(SMOKE)
    embed = {"dataset": "bp4d", "image": cfg["image"], "device": "cpu", "amp": "none"}
    out = tmp_path / "embed"
    argv = ["embed", "--cache", str(bp4d_cache), "--models", str(models), "--settings",
            json_dumps(embed), "--runs", "1:0,2:0", "--out", str(out)]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    first = out / "fold-1" / "seed-0" / "embeddings.npz"
    assert err == (f"aunce embed: error: received SIGTERM; stopped: saved before it, each file "
                   f"complete: {first}; run the step again to finish it (make run)")  # fmt: skip
    assert aio.check_digest(first)
    assert not (out / "fold-2" / "seed-0" / "embeddings.npz").exists()
    handler, received = sigterm_caught
    assert signal.getsignal(signal.SIGTERM) is handler and received == []  # put back, not reached


def test_sigterm_in_a_step_of_no_torch_exits_2(tmp_path, capsys, monkeypatch, sigterm_caught):
    from aunce import cli

    def stopped(args):
        os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(cli, "cmd_report_page", stopped)
    (tmp_path / "a.md").write_text("# a\n")
    argv = ["report-page", "--md", str(tmp_path / "a.md"), "--out", str(tmp_path / "a.html")]
    assert main(argv) == 2
    assert "received SIGTERM; stopped: nothing was saved" in capsys.readouterr().err
    assert sigterm_caught[1] == []


# --- commands: every value quoted ----------------------------------------------------------------
def test_every_value_in_a_rule_command_is_quoted():
    """Each {placeholder} of a shell: command ends in :q (Snakemake quotes it, a list element by
    element), except the number of threads."""
    import re

    unquoted = []
    for smk in sorted((REPO / "rules").glob("*.smk")):
        text = smk.read_text()
        for block in re.findall(r"shell:\n((?:\s+\".*\"\n)+)", text):
            for field in re.findall(r"(?<!\{)\{([^{}]+)\}(?!\})", block):
                if not field.endswith(":q") and field != "threads":
                    unquoted.append(f"{smk.name}: {{{field}}}")
    assert unquoted == []
    assert (
        len(re.findall(r"shell:", "".join(p.read_text() for p in (REPO / "rules").glob("*.smk"))))
        >= 15
    )
