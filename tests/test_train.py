"""The pretraining loop (aunce.train): no host synchronisation inside a step, the collapse
diagnostic, epoch checkpoints, resume after a kill or SIGTERM (byte-identical on the CPU)."""

import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from aunce import train
from aunce.config import load_config, resolved_linear_eval
from aunce.data.cache import open_cache

REPO = Path(__file__).resolve().parent.parent
EPOCHS = 3
STEPS = 2  # per epoch: 32 training frames of fold 1 in batches of 16
RUNS = [("1", 0), ("2", 0)]
TIMED = ("seconds", "frames_per_second")  # history columns that measure time, not training


def settings_for(method: str = "aunce", encoder: str = "megraph", **pretrain) -> dict:
    cfg = load_config(REPO / "config" / "smoke.yaml")
    return {
        "dataset": "bp4d",
        "encoder": {"name": encoder, "size": "tiny", "feature_dim": 16},
        "method": cfg["methods"][method],
        "method_name": method,
        "pretrain": dict(cfg["pretrain"], **{"epochs": EPOCHS, "batch_size": 16, **pretrain}),
        "image": cfg["image"],
        "device": "cpu",
        "amp": "none",
        "threads": 1,  # fast on a loaded machine, and the same in every process
    }


def evaluate(cache: Path, models: Path, runs, root: Path) -> None:
    """Embed and linearly evaluate each run of ``models`` (the workflow's stage 2)."""
    from aunce.evaluate import embed, linear_eval

    cfg = load_config(REPO / "config" / "smoke.yaml")
    base = {"dataset": "bp4d", "device": "cpu", "threads": 1}
    embed(cache, models, dict(base, image=cfg["image"], amp="none"), runs, root / "embed")
    linear = resolved_linear_eval(cfg, "bp4d")  # as the workflow: betas and weight decay resolved
    linear_eval(
        root / "embed",
        dict(base, encoder={"name": "megraph"}, method_name="aunce", linear_eval=linear),
        runs,
        root / "eval",
    )


@pytest.fixture(scope="module")
def reference(bp4d_cache, tmp_path_factory) -> Path:
    """Uninterrupted AUNCE runs of folds 1 and 2, embedded and evaluated."""
    root = tmp_path_factory.mktemp("reference")
    train.pretrain(bp4d_cache, settings_for(), RUNS, root / "pretrain")
    evaluate(bp4d_cache, root / "pretrain", RUNS, root)
    return root


def assert_same_results(root: Path, reference: Path, runs, cache: Path) -> None:
    """encoder.pt, settings.json, the history's training columns, embeddings and metrics.json
    byte-identical to the uninterrupted runs."""
    evaluate(cache, root / "pretrain", runs, root)
    for fold, seed in runs:
        for stage, name in [
            ("pretrain", "encoder.pt"),
            ("pretrain", "settings.json"),
            ("embed", "embeddings.npz"),
            ("eval", "metrics.json"),
            ("eval", "predictions.npz"),
        ]:
            got = train.run_dir(root / stage, fold, seed) / name
            want = train.run_dir(reference / stage, fold, seed) / name
            assert got.read_bytes() == want.read_bytes(), f"{stage} {fold}:{seed} {name} differs"
        history = [
            pd.read_csv(train.run_dir(r / "pretrain", fold, seed) / "history.csv").drop(
                columns=list(TIMED)
            )
            for r in (root, reference)
        ]
        pd.testing.assert_frame_equal(*history, check_exact=True)


# --- the collapse diagnostic --------------------------------------------------------------------
@pytest.mark.parametrize(("b", "k", "d"), [(2, 1, 3), (5, 4, 8), (9, 12, 16)])
def test_mean_similarity_against_the_pairwise_definition(b, k, d):
    z = torch.randn(b, k, d, generator=torch.Generator().manual_seed(b))
    pairs = [
        F.cosine_similarity(z[a, i], z[j, i], dim=0)
        for i in range(k)
        for a in range(b)
        for j in range(b)
        if a != j
    ]
    expected = torch.stack(pairs).view(k, -1).mean(1).mean()
    torch.testing.assert_close(train.mean_similarity(z), expected, rtol=1e-5, atol=1e-6)


def test_mean_similarity_is_one_for_collapsed_embeddings():
    z = torch.randn(1, 3, 8).expand(6, 3, 8) * torch.arange(1.0, 7.0).view(6, 1, 1)
    assert train.mean_similarity(z).item() == pytest.approx(1.0, abs=1e-6)


def test_history_records_the_mean_similarity(reference):
    history = pd.read_csv(train.run_dir(reference / "pretrain", "1", 0) / "history.csv")
    assert list(history.columns) == [
        "epoch", "lr", "loss", "mean_similarity", "seconds", "frames_per_second"
    ]  # fmt: skip
    assert history["mean_similarity"].between(-1, 1).all() and len(history) == EPOCHS


# --- no host synchronisation inside a step ------------------------------------------------------
_READS = {"item", "tolist", "cpu", "numpy", "__array__", "__bool__", "__float__", "__int__",
          "__index__", "nonzero", "masked_select", "unique"}  # fmt: skip


class HostReads(TorchFunctionMode):
    """Counts the operations that make the host wait for the device on CUDA: reading a value
    (``.item()``, ``.tolist()``, ``.cpu()``, ``bool(t)``, boolean-mask indexing, ...) and a copy or
    a ``torch.tensor`` to a device without ``non_blocking``. Values drawn from a
    ``torch.Generator`` live on the host by design (the same draws on any device) and may be read;
    so may the optimizer's step counters, which torch keeps on the host."""

    def __init__(self, host_tensors=lambda: ()):
        super().__init__()
        self.counts: Counter = Counter()
        self._drawn: dict[int, torch.Tensor] = {}
        self._host_tensors = host_tensors

    def _host(self, t) -> bool:
        return id(t) in self._drawn or any(t is h for h in self._host_tensors())

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        out = func(*args, **kwargs)
        if kwargs.get("generator") is not None:
            for t in out if isinstance(out, tuple) else (out,):
                self._drawn[id(t)] = t
            return out
        first = args[0] if args else None
        if name in _READS and isinstance(first, torch.Tensor) and not self._host(first):
            self.counts[name] += 1
        elif name in ("__getitem__", "__setitem__") and _bool_index(args[1]):
            self.counts["boolean index"] += 1
        elif name == "to" and _device_arg(args[1:], kwargs) and not kwargs.get("non_blocking"):
            self.counts["blocking copy"] += 1
        elif name == "tensor" and kwargs.get("device") is not None:
            self.counts["torch.tensor to a device"] += 1
        return out


def _bool_index(index) -> bool:
    items = index if isinstance(index, tuple) else (index,)
    return any(isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in items)


def _device_arg(args, kwargs) -> bool:
    return "device" in kwargs or any(isinstance(a, (torch.device, str)) for a in args)


def optimizer_steps(run):
    return lambda: [s["step"] for s in run.optimizer.state.values() if "step" in s]


def host_reads_of_an_epoch(cache_dir, settings) -> Counter:
    """What the second epoch of a run reads on the host (the first creates the optimizer's state)."""
    cache = open_cache(cache_dir)
    loop = train.Loop(cache, cache.labels, torch.device("cpu"), None, False)
    train_idx, _ = cache.split("1")
    weights, minority = train.training_statistics(cache, train_idx, "training split")
    run = train.setup_run(loop, train_idx, weights, minority, settings, "1", 0)
    train.train_epoch(run, loop, 1)
    with HostReads(optimizer_steps(run)) as reads:
        assert train.train_epoch(run, loop, 2) is not None
    return reads.counts


@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # fast on a loaded machine
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize(
    ("method", "encoder"), [("aunce", "megraph"), ("wce", "megraph"), ("aunce", "roi")]
)
def test_no_host_sync_inside_a_training_step(bp4d_cache, one_thread, method, encoder):
    """2 or 8 steps per epoch: one read, the epoch's sums; none in a step."""
    few = host_reads_of_an_epoch(bp4d_cache, settings_for(method, encoder, batch_size=16))
    many = host_reads_of_an_epoch(bp4d_cache, settings_for(method, encoder, batch_size=4))
    assert few == many == Counter({"tolist": 1}), (few, many)


def test_no_host_sync_inside_a_linear_evaluation_step():
    from aunce.evaluate import fit_linear_head

    g = torch.Generator().manual_seed(0)
    z, labels = torch.randn(64, 3, 8, generator=g), torch.randint(-1, 2, (64, 3), generator=g)
    labels[:2] = 1  # every AU active somewhere: weights are defined

    def reads(epochs: int) -> Counter:
        cfg = {"epochs": epochs, "batch_size": 16, "lr": 1e-2, "weight_decay": 0.0,
               "optimizer": "adamw"}  # fmt: skip
        with HostReads() as counter:
            head = fit_linear_head(z, labels, {"linear_eval": cfg}, 0, torch.device("cpu"))
        optim_steps = 2 * 4 * epochs  # the head's weight and bias: AdamW's host step counters
        counter.counts["item"] -= min(counter.counts["item"], optim_steps)
        assert head is not None
        return +counter.counts

    assert reads(1) == reads(3)  # the AU weights' one-off checks, nothing per step


# --- checkpoints and resume ---------------------------------------------------------------------
def test_checkpoint_root_lies_outside_the_declared_outputs(tmp_path):
    assert train.checkpoint_root("results/pretrain/bp4d/megraph/aunce") == Path(
        "results/checkpoints/pretrain/bp4d/megraph/aunce"
    )
    assert train.checkpoint_root("/x/pretrain/y/results/pretrain/a") == Path(
        "/x/pretrain/y/results/checkpoints/pretrain/a"
    )
    assert train.checkpoint_root(tmp_path / "out") == tmp_path / "out" / "checkpoints"


class Interrupt(Exception):
    pass


def fail_at(monkeypatch, step: int, action=None):
    """Make the ``step``-th training step of this process (counted from 1) raise, or run
    ``action`` after it."""
    real, calls = train.train_step, {"n": 0}

    def step_then(run, batch, loop):
        calls["n"] += 1
        if calls["n"] == step and action is None:
            raise Interrupt(f"injected failure at step {step}")
        out = real(run, batch, loop)
        if calls["n"] == step:
            action()
        return out

    monkeypatch.setattr(train, "train_step", step_then)


def test_a_failed_job_resumes_its_runs_and_restores_the_finished_ones(
    bp4d_cache, reference, tmp_path, monkeypatch, caplog
):
    caplog.set_level(logging.INFO, logger="aunce.train")
    out = tmp_path / "pretrain"
    # run 1 finished; run 2 fails in the middle of epoch 2
    fail_at(monkeypatch, EPOCHS * STEPS + STEPS + 1)
    with pytest.raises(Interrupt):  # with the reading thread (CUDA's default) this time
        train.pretrain(bp4d_cache, settings_for(), RUNS, out, prefetch=2)
    monkeypatch.undo()
    ckpts = train.checkpoint_root(out)
    first = torch.load(ckpts / "fold-1" / "seed-0" / train.CHECKPOINT, weights_only=True)
    second = torch.load(ckpts / "fold-2" / "seed-0" / train.CHECKPOINT, weights_only=True)
    assert first["finished"] and len(first["history"]) == EPOCHS
    assert not second["finished"] and len(second["history"]) == 1 and second["progress"] is None
    import shutil

    shutil.rmtree(out)  # what Snakemake does to the declared outputs of a failed job
    caplog.clear()
    train.pretrain(bp4d_cache, settings_for(), RUNS, out, prefetch=2)
    assert "method aunce fold 1 seed 0: run already finished, restored" in caplog.text
    assert "method aunce fold 2 seed 0: resumed from epoch 1 (" in caplog.text
    assert not (tmp_path / "checkpoints").exists() and not ckpts.exists()  # removed when done
    assert_same_results(tmp_path, reference, RUNS, bp4d_cache)


def test_sigterm_checkpoints_at_the_current_step_and_the_run_resumes(
    bp4d_cache, reference, tmp_path, monkeypatch, caplog
):
    caplog.set_level(logging.INFO, logger="aunce.train")
    out = tmp_path / "pretrain"
    fail_at(monkeypatch, STEPS + 1, lambda: os.kill(os.getpid(), signal.SIGTERM))  # epoch 2
    with pytest.raises(train.Preempted, match="checkpointed at step 1 of epoch 2"):
        train.pretrain(bp4d_cache, settings_for(), RUNS[:1], out)
    monkeypatch.undo()
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handler is put back
    state = torch.load(
        train.checkpoint_root(out) / "fold-1" / "seed-0" / train.CHECKPOINT, weights_only=True
    )
    assert state["progress"]["epoch"] == 2 and state["progress"]["step"] == 1
    caplog.clear()
    train.pretrain(bp4d_cache, settings_for(), RUNS[:1], out)
    assert "resumed from epoch 1, step 1 of epoch 2" in caplog.text
    assert_same_results(tmp_path, reference, RUNS[:1], bp4d_cache)


def test_a_checkpoint_of_other_settings_is_not_resumed(bp4d_cache, tmp_path, monkeypatch, caplog):
    caplog.set_level(logging.INFO, logger="aunce.train")
    out = tmp_path / "pretrain"
    fail_at(monkeypatch, STEPS + 1)
    with pytest.raises(Interrupt):
        train.pretrain(bp4d_cache, settings_for(epochs=2), RUNS[:1], out)
    monkeypatch.undo()
    train.pretrain(bp4d_cache, settings_for(epochs=2, lr=2e-3), RUNS[:1], out)
    assert "checkpoint of other settings, data or code; training afresh" in caplog.text
    assert "resumed" not in caplog.text


def test_a_non_finite_loss_names_method_fold_seed_and_epoch(bp4d_cache, tmp_path, monkeypatch):
    from aunce import AunceError

    def nan_step(run, batch, loop):
        return torch.tensor([float("nan"), 0.0, 0.0], dtype=torch.float64)

    monkeypatch.setattr(train, "train_step", nan_step)
    with pytest.raises(AunceError, match="method wce fold 1 seed 0 epoch 1: the loss is nan"):
        train.pretrain(bp4d_cache, settings_for("wce"), RUNS[:1], tmp_path / "pretrain")
    assert not (train.checkpoint_root(tmp_path / "pretrain") / "fold-1").exists()


# --- the job, killed: a process of its own ------------------------------------------------------
def start_job(cache: Path, out: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "aunce", "pretrain", "--cache", str(cache),
           "--settings", json.dumps(settings_for()), "--runs", "1:0", "--out", str(out)]  # fmt: skip
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), *sys.path[1:2]]))
    return subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env=env)


def wait_for_checkpoint(proc: subprocess.Popen, out: Path) -> None:
    """Until the first epoch's checkpoint is there (the job is then in epoch 2 or later)."""
    path = train.checkpoint_root(out) / "fold-1" / "seed-0" / train.CHECKPOINT
    deadline = time.monotonic() + 120
    while not path.exists():
        assert proc.poll() is None, proc.stderr.read()
        assert time.monotonic() < deadline, "no checkpoint after 120 s"
        time.sleep(0.005)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["kill-9", "sigterm"])
def test_a_killed_job_resumes_byte_identical(bp4d_cache, reference, tmp_path, caplog, sig):
    caplog.set_level(logging.INFO, logger="aunce.train")
    out = tmp_path / "pretrain"
    proc = start_job(bp4d_cache, out)
    try:
        wait_for_checkpoint(proc, out)
        assert proc.poll() is None, "the job finished before it could be killed"
        proc.send_signal(sig)
        rc = proc.wait(timeout=60)
        stderr = proc.stderr.read()
    finally:
        proc.kill()
        proc.wait()
    if sig == signal.SIGTERM:
        assert rc == 2, stderr
        assert (
            "aunce pretrain: error: received SIGTERM; method aunce fold 1 seed 0 is checkpointed"
            in stderr
        )
    else:
        assert rc == -signal.SIGKILL
    train.pretrain(bp4d_cache, settings_for(), RUNS[:1], out)
    assert "method aunce fold 1 seed 0: resumed from epoch" in caplog.text
    assert_same_results(tmp_path, reference, RUNS[:1], bp4d_cache)


def test_train_eval_keeps_checkpoints_until_every_method_is_done(bp4d_cache, tmp_path):
    from aunce.cli import main

    cfg = load_config(REPO / "config" / "smoke.yaml")
    stages = {
        "pretrain": settings_for("wce", epochs=1),
        "embed": {"dataset": "bp4d", "image": cfg["image"], "device": "cpu", "amp": "none"},
        "linear_eval": {"dataset": "bp4d", "encoder": {"name": "megraph"}, "method_name": "wce",
                        "linear_eval": resolved_linear_eval(cfg, "bp4d"), "device": "cpu"},
    }  # fmt: skip
    results = tmp_path / "results"
    argv = ["train-eval", "--cache", str(bp4d_cache), "--settings", json.dumps({"wce": stages}),
            "--runs", "1:0", "--results", str(results), "--cell", "bp4d/megraph"]  # fmt: skip
    assert main(argv) == 0
    assert (results / "eval/bp4d/megraph/wce/fold-1/seed-0/metrics.json").is_file()
    assert not (results / "checkpoints").exists()


# --- the released code's training step: one pass per view ---------------------------------------
def one_step(cache_dir, encoder: str, passes: str, train_mode: bool):
    """One train_step of a fresh AUNCE run on fold 1's first 16 frames: its (loss, alignment loss,
    similarity) and the encoder's parameters after the step."""
    cache = open_cache(cache_dir)
    loop = train.Loop(cache, cache.labels, torch.device("cpu"), None, False, 0)
    train_idx, _ = cache.split("1")
    weights, minority = train.training_statistics(cache, train_idx, "training split")
    settings = settings_for("aunce", encoder, view_passes=passes)
    run = train.setup_run(loop, train_idx, weights, minority, settings, "1", 0)
    run.encoder.train(train_mode)
    stats = train.train_step(run, run.reader(np.sort(train_idx[:16])), loop)
    return stats, [p.detach().clone() for p in run.encoder.parameters()]


@pytest.mark.parametrize("encoder", ["megraph", "jaanet"])
def test_separate_view_passes_equal_the_joint_pass_without_batch_statistics(bp4d_cache, encoder):
    """In eval mode batch norm uses its running statistics: one pass per view (the released code)
    computes what one pass over both views does. In train mode each pass normalises its own view."""
    joint, joint_params = one_step(bp4d_cache, encoder, "joint", train_mode=False)
    separate, separate_params = one_step(bp4d_cache, encoder, "separate", train_mode=False)
    assert torch.allclose(joint, separate, rtol=1e-5, atol=1e-6)
    for a, b in zip(joint_params, separate_params, strict=True):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-6)
    joint, _ = one_step(bp4d_cache, encoder, "joint", train_mode=True)
    separate, _ = one_step(bp4d_cache, encoder, "separate", train_mode=True)
    assert not torch.allclose(joint[0], separate[0])  # batch statistics per view: another loss


@pytest.mark.parametrize(("drop_last", "steps"), [(True, 2), (False, 3)])
def test_last_partial_batch_kept_on_request(bp4d_cache, drop_last, steps):
    """pretrain.drop_last false (the released code): 32 training frames in batches of 12 give 3
    steps; true (the harness's default) 2 full batches."""
    settings = settings_for("wce", batch_size=12, epochs=1, drop_last=drop_last)
    cache = open_cache(bp4d_cache)
    loop = train.Loop(cache, cache.labels, torch.device("cpu"), None, False, 0)
    train_idx, _ = cache.split("1")
    weights, minority = train.training_statistics(cache, train_idx, "training split")
    run = train.setup_run(loop, train_idx, weights, minority, settings, "1", 0)
    train.train_epoch(run, loop, 1)
    assert int(next(iter(run.optimizer.state.values()))["step"]) == steps


def released_step_lr(epoch: int, init_lr: float, gamma=0.1, stepsize=60) -> float:
    """The released lr_schedule.step_lr_scheduler, as written there (epoch counted from 1): its
    init_lr argument defaults to 1e-5 and is replaced by the given rate in epoch 1 only."""
    base = init_lr if epoch == 1 else 1e-5
    return base * gamma ** (epoch // stepsize)


@pytest.mark.parametrize("lr", [1e-5, 1e-3])
def test_released_learning_rate_schedule(lr):
    """config/released.yaml's schedule (lr_step_epochs [60], lr_from_epoch_2 1e-5) is the
    release's, whatever the first rate; without lr_from_epoch_2 the rate stays until the step."""
    cfg = {"lr": lr, "lr_step_epochs": [60], "lr_step_factor": 0.1, "lr_from_epoch_2": 1e-5}
    factor = train.lr_factors(cfg)
    for epoch in range(1, 62):
        assert lr * factor(epoch - 1) == pytest.approx(released_step_lr(epoch, lr), rel=1e-12)
    factor = train.lr_factors(dict(cfg, lr_from_epoch_2=None))
    assert [lr * factor(e) for e in (0, 1, 58, 59)] == pytest.approx([lr, lr, lr, lr / 10])


def test_a_run_records_the_schedule_it_trained_with(bp4d_cache, tmp_path):
    settings = settings_for("wce", epochs=3, lr=1e-3, lr_from_epoch_2=1e-4, lr_step_epochs=[3])
    train.pretrain(bp4d_cache, settings, [("1", 0)], tmp_path)
    history = pd.read_csv(tmp_path / "fold-1" / "seed-0" / "history.csv")
    assert history["lr"].tolist() == pytest.approx([1e-3, 1e-4, 1e-5])


def test_a_replicate_draws_from_another_seed(bp4d_cache):
    """`replicate: n` (the A/A control): the same settings and seed, the random draws of seed +
    1000 n: another initialisation and stream; `replicate: 0` or none, the seed's own."""

    def start(method: dict, seed: int = 0):
        cache = open_cache(bp4d_cache)
        loop = train.Loop(cache, cache.labels, torch.device("cpu"), None, False, 0)
        train_idx, _ = cache.split("1")
        weights, minority = train.training_statistics(cache, train_idx, "training split")
        settings = dict(settings_for("wce"), method=method)
        run = train.setup_run(loop, train_idx, weights, minority, settings, "1", seed)
        return [p.detach().clone() for p in run.head.parameters()], run.generator.initial_seed()

    wce = {"loss": "wce", "label": "WCE"}
    base, base_seed = start(wce)
    again, _ = start(dict(wce, replicate=0))
    copy, copy_seed = start(dict(wce, label="WCE (replicate)", replicate=1))
    shifted, _ = start(wce, seed=train.REPLICATE_SEED_STEP)
    assert all(torch.equal(a, b) for a, b in zip(base, again, strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(base, copy, strict=True))
    assert all(torch.equal(a, b) for a, b in zip(copy, shifted, strict=True))
    assert (base_seed, copy_seed) == (0, train.REPLICATE_SEED_STEP)
