"""Builds small CIFAR-10 releases in exactly the python format (pickled dicts in a tar.gz)."""
from __future__ import annotations

import hashlib
import io
import pickle
import tarfile
from pathlib import Path

import numpy as np

NAMES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]


def batch_bytes(rng: np.random.Generator, n: int, name: str) -> bytes:
    data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
    labels = [int(v) for v in rng.integers(0, 10, n)]
    return pickle.dumps({b"batch_label": name.encode(), b"labels": labels, b"data": data,
                         b"filenames": [f"{name}_{i}.png".encode() for i in range(n)]}, protocol=2)


def make_release(folder: Path, per_batch: int = 20, seed: int = 0) -> dict[str, str]:
    """Writes folder/cifar-10-python.tar.gz and returns the MD5s of it and of every batch."""
    rng = np.random.default_rng(seed)
    files = {name: batch_bytes(rng, per_batch, name) for name in NAMES}
    files["batches.meta"] = pickle.dumps({b"label_names": [b"c%d" % i for i in range(10)]})
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "cifar-10-python.tar.gz").write_bytes(buf.getvalue())
    sums = {name: hashlib.md5(data).hexdigest() for name, data in files.items()}
    sums["cifar-10-python.tar.gz"] = hashlib.md5(buf.getvalue()).hexdigest()
    return sums


def extract(folder: Path) -> Path:
    with tarfile.open(folder / "cifar-10-python.tar.gz") as tar:
        tar.extractall(folder, filter="data")
    (folder / "cifar-10-python.tar.gz").unlink()
    return folder / "cifar-10-batches-py"
