"""What the integrity checks cost (docs/recovery.md), as ratios within one run on one machine.

    python benchmarks/integrity.py [--mb 256] [--repeats 3]

- **SHA-256 of a file against reading it**: a cache is hashed in full once per job process that
  opens it (aunce.data.cache.verify_cache); encoder.pt, embeddings and checkpoints each time they
  are read. The ratio says what hashing adds to a read of the same bytes (page cache warm).
- **A checkpoint with its sidecar against without**: ``torch.save`` of a state of the given size,
  then hashing the temporary file before the rename (aunce.io.atomic_path(digest=True)).
- **Code versions**: every stage's import closure by syntax tree (aunce.codehash, what each
  Snakemake process computes when it reads the workflow), in CPU seconds, against hashing the
  bytes of every module of the package (what the hand-listed byte hash it replaces cost, at most).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path


def best(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def read(path: Path) -> None:
    with open(path, "rb") as fh:
        while fh.read(1 << 20):
            pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=256, help="size of the file hashed (MB)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import torch

    from aunce import codehash
    from aunce.io import atomic_path, file_sha256

    print(f"# {platform.node()}, {os.cpu_count()} CPUs, torch {torch.__version__}")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "data.bin"
        path.write_bytes(os.urandom(args.mb << 20))
        read(path)  # into the page cache
        t_read = best(lambda: read(path), args.repeats)
        t_hash = best(lambda: file_sha256(path), args.repeats)
        print(f"read {args.mb} MB: {t_read:.3f} s; read + SHA-256: {t_hash:.3f} s "
              f"({args.mb / t_hash:.0f} MB/s), ratio {t_hash / t_read:.2f}")  # fmt: skip

        state = {"w": torch.randn(args.mb << 18)}  # float32: the same size in MB

        def plain():
            with atomic_path(Path(tmp) / "plain.pt") as t, open(t, "wb") as fh:
                torch.save(state, fh)

        def hashed():
            with atomic_path(Path(tmp) / "hashed.pt", digest=True) as t, open(t, "wb") as fh:
                torch.save(state, fh)

        times = {plain: [], hashed: []}
        for _ in range(args.repeats):  # alternated, so that both see the same machine
            for fn, seen in times.items():
                seen.append(best(fn, 1))
        t_plain, t_hashed = min(times[plain]), min(times[hashed])
        print(f"checkpoint of {args.mb} MB: save {t_plain:.3f} s, with its SHA-256 sidecar "
              f"{t_hashed:.3f} s, ratio {t_hashed / t_plain:.2f}")  # fmt: skip

    def closures():
        for fn in (codehash.source_digest, codehash._tree, codehash._module_imports,
                   codehash._cli_parts, codehash.cli_digest):  # fmt: skip
            fn.cache_clear()
        return {stage: codehash.code_version(stage) for stage in codehash.STAGES}

    def bytes_of_package():
        digest = hashlib.sha256()
        for f in sorted(codehash.PACKAGE_DIR.rglob("*.py")):
            digest.update(f.read_bytes())
        return digest.hexdigest()

    def cpu(fn):  # CPU seconds of this process: less noisy than wall time on a shared machine
        start = time.process_time()
        fn()
        return time.process_time() - start

    t_ast = statistics.median(cpu(closures) for _ in range(args.repeats))
    t_bytes = statistics.median(cpu(bytes_of_package) for _ in range(args.repeats))
    print(
        f"code versions of {len(codehash.STAGES)} stages: {t_ast:.3f} CPU s (median of "
        f"{args.repeats}); bytes of every module: {t_bytes:.4f} CPU s"
    )


if __name__ == "__main__":
    main()
