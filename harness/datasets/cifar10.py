"""CIFAR-10 from the standard python-format release, checksums verified.

Looks in ``data_dir`` (or $CONVBENCH_DATA, else ~/.cache/convbench) for ``cifar-10-python.tar.gz``
or the extracted ``cifar-10-batches-py/``. Without either, and without an explicit ``data_dir``,
it downloads the archive (163 MB) into the cache, saying how far it got on stderr, and checks its MD5 before
keeping it. Every failure names the file.
"""
from __future__ import annotations

import hashlib
import io
import os
import pickle
import sys
import tarfile
import time
import urllib.request
from pathlib import Path
from typing import IO, Callable

import numpy as np

from harness.datasets.base import Dataset, cache_dir
from harness.errors import ConvbenchError

URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
ARCHIVE = "cifar-10-python.tar.gz"
FOLDER = "cifar-10-batches-py"
OFFICIAL_MD5 = {
    ARCHIVE: "c58f30108f718f92721af3b95e74349a",
    "data_batch_1": "c99cafc152244af753f735de768cd75f",
    "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
    "data_batch_4": "634d18415352ddfa80567beed471001a",
    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
    "test_batch": "40351d587109b95175f43aff81a1287e",
}
TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST = ("test_batch",)
CHUNK = 1 << 20      # bytes read at a time
EVERY_S = 0.5        # a terminal's progress line is redrawn at most this often
EVERY_PERCENT = 10   # elsewhere (a log, a pipe) a plain line per this many percent


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def load_cifar10(data_dir: str | Path | None = None, *, checksums: dict[str, str] | None = OFFICIAL_MD5,
                 url: str | None = None) -> Dataset:
    """``checksums=None`` skips verification (for a home-made or partial copy); the Dataset's info
    says whether it was verified."""
    root = Path(data_dir) if data_dir else cache_dir()
    if data_dir and not root.is_dir():
        raise ConvbenchError(f"data directory {str(root)!r} does not exist")
    folder, archive = root / FOLDER, root / ARCHIVE
    if folder.is_dir():
        read, source = _folder_reader(folder, checksums), str(folder)
    elif archive.is_file():
        read, source = _archive_reader(archive, checksums), str(archive)
    elif data_dir:
        raise ConvbenchError(f"CIFAR-10 not found in {str(root)!r}: expected {ARCHIVE} or {FOLDER}/ "
                             f"(the python version from {URL})")
    else:
        download(url or URL, archive, checksums)
        read, source = _archive_reader(archive, checksums), str(archive)
    x_tr, y_tr = _stack([_parse(read(n), n, source) for n in TRAIN])
    x_te, y_te = _stack([_parse(read(n), n, source) for n in TEST])
    return Dataset("cifar10", x_tr, y_tr, x_te, y_te, 10, {"source": source, "verified": checksums is not None})


def download(url: str, target: Path, checksums: dict[str, str] | None, out: IO[str] | None = None) -> None:
    """``url`` into ``target`` (through ``target.part``, kept only when whole and its MD5 matches), its progress on
    ``out`` (default stderr)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".part")
    digest = hashlib.md5()
    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(tmp, "wb") as fh:
            size = int(response.headers.get("Content-Length") or 0) or None
            progress = Progress(out or sys.stderr, url, target, size)
            while chunk := response.read(CHUNK):
                fh.write(chunk)
                digest.update(chunk)
                progress.update(len(chunk))
            progress.done()
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ConvbenchError(f"cannot download CIFAR-10 from {url} ({exc}); put {ARCHIVE} in a folder "
                             "and pass --data-dir") from None
    if checksums and digest.hexdigest() != checksums[ARCHIVE]:
        tmp.unlink(missing_ok=True)
        raise ConvbenchError(f"downloaded {ARCHIVE} from {url} has MD5 {digest.hexdigest()}, expected {checksums[ARCHIVE]}")
    os.replace(tmp, target)


class Progress:
    """A download's progress: on a terminal one line redrawn at most every ``EVERY_S``; elsewhere (a log file, a
    pipe) a plain line each ``EVERY_PERCENT`` percent (each ``CHUNK`` x 16 when the size is unknown)."""

    def __init__(self, out: IO[str], url: str, target: Path, size: int | None) -> None:
        self.out, self.size, self.got, self.shown = out, size, 0, 0.0
        self.tty = out.isatty()
        self.last = time.monotonic()
        total = f" ({size / 1e6:.0f} MB)" if size else ""
        self.say(f"downloading CIFAR-10{total} from {url} to {target}")

    def say(self, text: str, final: bool = True) -> None:
        """A line; on a terminal it replaces the progress line, and one not ``final`` is redrawn by the next."""
        self.out.write(("\r\033[K" if self.tty else "") + text + ("\n" if final or not self.tty else ""))
        self.out.flush()

    def line(self) -> str:
        done = f"{self.got / 1e6:.1f}"
        return f"  {100 * self.got / self.size:3.0f}%  {done} / {self.size / 1e6:.1f} MB" if self.size else f"  {done} MB"

    def update(self, n: int) -> None:
        self.got += n
        now = time.monotonic()
        if self.tty:
            if now - self.last >= EVERY_S:
                self.last = now
                self.say(self.line(), final=False)
            return
        mark = 100 * self.got / self.size if self.size else self.got / (16 * CHUNK)
        step = EVERY_PERCENT if self.size else 1
        if mark - self.shown >= step and (not self.size or self.got < self.size):
            self.shown = mark - mark % step
            self.say(self.line())

    def done(self) -> None:
        self.say(self.line() + " done")


def _verify(name: str, data: bytes, where: str, checksums: dict[str, str] | None) -> None:
    if checksums and name in checksums and md5(data) != checksums[name]:
        raise ConvbenchError(f"{where}: MD5 {md5(data)} does not match the release's {checksums[name]} "
                             "(truncated or corrupt; replace the file, or pass --no-checksum for a copy you made yourself)")


def _folder_reader(folder: Path, checksums: dict[str, str] | None) -> Callable[[str], bytes]:
    def read(name: str) -> bytes:
        path = folder / name
        if not path.is_file():
            raise ConvbenchError(f"CIFAR-10 file missing: {str(path)!r}")
        data = path.read_bytes()
        _verify(name, data, str(path), checksums)
        return data
    return read


def _archive_reader(archive: Path, checksums: dict[str, str] | None) -> Callable[[str], bytes]:
    blob = archive.read_bytes()
    _verify(ARCHIVE, blob, str(archive), checksums)
    try:
        with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as tar:
            members = {m.name.rsplit("/", 1)[-1]: tar.extractfile(m).read()  # type: ignore[union-attr]
                       for m in tar.getmembers() if m.isfile() and m.name.startswith(FOLDER + "/")}
    except (tarfile.TarError, EOFError, OSError, AttributeError) as exc:
        raise ConvbenchError(f"{str(archive)!r} is not a readable gzip tar archive (truncated or corrupt?): {exc}") from None

    def read(name: str) -> bytes:
        if name not in members:
            raise ConvbenchError(f"{str(archive)!r} has no member {FOLDER}/{name}")
        return members[name]
    return read


def _parse(data: bytes, name: str, source: str) -> tuple[np.ndarray, np.ndarray]:
    where = f"{source}: {name}"
    try:
        batch = pickle.loads(data, encoding="bytes")
        raw, labels = batch[b"data"], batch[b"labels"]
    except Exception as exc:  # pickle raises many types on damaged input
        raise ConvbenchError(f"{where} is not a CIFAR-10 python batch ({type(exc).__name__}: {exc})") from None
    raw = np.asarray(raw, dtype=np.uint8)
    labels = np.asarray(labels, dtype=np.int64)
    if raw.ndim != 2 or raw.shape[1] != 3072 or len(labels) != len(raw):
        raise ConvbenchError(f"{where}: data has shape {raw.shape} with {len(labels)} labels, expected (N, 3072) and N labels")
    if len(labels) and (labels.min() < 0 or labels.max() > 9):
        raise ConvbenchError(f"{where}: labels outside 0..9")
    return raw.reshape(-1, 3, 32, 32), labels


def _stack(parts: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    x = np.concatenate([p[0] for p in parts]).astype(np.float32) / 255.0
    return x, np.concatenate([p[1] for p in parts])
