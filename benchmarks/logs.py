"""A realistic training log, generated once and cached: mostly ordinary lines, a few signatures.

The stderr benchmarks need gigabytes of text that looks like what a training job prints: logger
lines with timestamps, tqdm progress bars redrawn with ``\\r``, warnings, the odd non-ASCII
character, and, rarely, a real failure line from the signature catalogue's own samples. Generating
1 GiB in Python takes a while, so the file is built from a few megabytes of distinct lines,
repeated with fresh signature lines spliced in, and cached under ``benchmarks/results/cache``.
"""

from __future__ import annotations

import random
from pathlib import Path

from crashsight.diagnostics.catalogue import CATALOGUE

from .common import RESULTS_DIR

__all__ = ["SPARSE", "training_log"]

#: Failure lines per MiB in the headline log: about 64 in 1 GiB, "a few signatures" in a log that
#: is almost all ordinary lines. The collector benchmark also reports a dense log (2 per MiB, a job
#: that keeps logging retried connection errors), because matching cost grows with the density.
SPARSE = 1 / 16
_BLOCK = 4 << 20
_MIB = 1 << 20


def _ordinary_lines(rng: random.Random, size: int) -> bytes:
    """``size`` bytes of ordinary training-log lines."""
    out: list[str] = []
    total = 0
    step = 0
    while total < size:
        step += 1
        kind = rng.random()
        stamp = f"2024-05-{rng.randint(1, 28):02d} {rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d},{rng.randint(0, 999):03d}"
        if kind < 0.70:
            line = (
                f"{stamp} INFO trainer.py:{rng.randint(100, 999)}] [rank{rng.randint(0, 7)}] step "
                f"{step}/100000 loss={rng.uniform(0.5, 4):.4f} lr={rng.uniform(1e-5, 3e-4):.3e} "
                f"grad_norm={rng.uniform(0.1, 5):.3f} tokens/s={rng.uniform(1e4, 9e4):.1f}\n"
            )
        elif kind < 0.85:
            done = rng.randint(0, 100)
            bar = "█" * (done // 5) + " " * (20 - done // 5)
            line = (
                f"Epoch {rng.randint(1, 9)}: {done:3d}%|{bar}| {done * 31}/3100 "
                f"[{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}<00:{rng.randint(10, 59)}, "
                f"{rng.uniform(1, 9):.2f}it/s, loss={rng.uniform(0.5, 4):.3f}]\r"
            )
        elif kind < 0.95:
            line = (
                f"{stamp} DEBUG dataloader.py:{rng.randint(10, 400)}] worker {rng.randint(0, 15)} "
                f"prefetched shard-{rng.randint(0, 4096):05d}.tar ({rng.randint(1, 900)} MB) in "
                f"{rng.uniform(0.01, 3):.2f}s\n"
            )
        else:
            line = (
                f"{stamp} WARNING torch/utils/checkpoint.py:{rng.randint(10, 90)}] "
                "None of the inputs have requires_grad=True. Gradients will be None\n"
            )
        out.append(line)
        total += len(line.encode())
    return "".join(out).encode()


def _signature_lines() -> list[bytes]:
    return [f"{sample}\n".encode() for sig in CATALOGUE for sample in sig.samples]


def training_log(size: int, per_mib: float = SPARSE, seed: int = 6) -> Path:
    """Return the path of a cached log of about ``size`` bytes, generating it if needed.

    Args:
        size: Bytes of log wanted.
        per_mib: Signature lines per MiB, on average.
        seed: Seed of the generator; the same arguments always give the same file.
    """
    cache = RESULTS_DIR / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / f"training-{size}-{per_mib:g}-{seed}.log"
    if path.exists() and path.stat().st_size >= size:
        return path
    rng = random.Random(seed)
    block = _ordinary_lines(rng, min(size, _BLOCK))
    signatures = _signature_lines()
    tmp = path.with_suffix(".tmp")
    with tmp.open("wb") as out:
        written = 0
        while written < size:
            piece = block[: min(len(block), size - written)]
            expected = per_mib * len(piece) / _MIB
            count = int(expected) + (rng.random() < expected - int(expected))
            cuts = sorted(rng.randrange(len(piece)) for _ in range(count))
            start = 0
            for cut in cuts:
                cut = piece.find(b"\n", cut) + 1 or len(piece)
                out.write(piece[start:cut])
                out.write(rng.choice(signatures))
                start = cut
            out.write(piece[start:])
            written += len(piece)
    tmp.replace(path)
    return path
