"""The CIFAR-10 download says what it fetches and how far it got (it printed nothing for 163 MB), from a local HTTP
server (no internet): the release's URL pointed at it."""
from __future__ import annotations

import functools
import http.server
import io
import threading

import pytest
from helpers import make_release

from harness.datasets import cifar10


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def served(tmp_path, monkeypatch):
    """A small release (about 1.2 MB) behind http://127.0.0.1:PORT/, read in 64 KiB chunks, as the release's URL."""
    sums = make_release(tmp_path / "server", per_batch=64)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler,
                                                                                 directory=str(tmp_path / "server")))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}/{cifar10.ARCHIVE}"
    monkeypatch.setattr(cifar10, "URL", url)
    monkeypatch.setattr(cifar10, "CHUNK", 1 << 16)
    monkeypatch.setenv("CONVBENCH_DATA", str(tmp_path / "cache"))
    yield url, sums, (tmp_path / "server" / cifar10.ARCHIVE).stat().st_size
    server.shutdown()
    thread.join()


def test_download_progress_is_plain_lines_when_not_a_terminal(served, capsys, tmp_path):
    url, sums, size = served
    data = cifar10.load_cifar10(checksums=sums)
    assert data.x_test.shape[0] == 64 and (tmp_path / "cache" / cifar10.ARCHIVE).is_file()
    out, err = capsys.readouterr()
    lines = err.splitlines()
    assert out == "" and "\r" not in err
    assert lines[0] == f"downloading CIFAR-10 ({size / 1e6:.0f} MB) from {url} to {tmp_path / 'cache' / cifar10.ARCHIVE}"
    assert lines[-1] == f"  100%  {size / 1e6:.1f} / {size / 1e6:.1f} MB done"
    percents = [int(line.split("%")[0]) for line in lines[1:]]
    assert 5 <= len(percents) <= 11 and percents == sorted(percents)   # throttled: about one line per 10%
    assert not (tmp_path / "cache" / (cifar10.ARCHIVE + ".part")).exists()
    cifar10.load_cifar10(checksums=sums)
    assert capsys.readouterr().err == ""   # once it is there, nothing is fetched and nothing said


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_download_progress_on_a_terminal_is_one_line_redrawn(served, tmp_path, monkeypatch):
    url, sums, size = served
    monkeypatch.setattr(cifar10, "EVERY_S", 0.0)
    terminal = Terminal()
    cifar10.download(url, tmp_path / "here" / cifar10.ARCHIVE, sums, out=terminal)
    text = terminal.getvalue()
    assert text.count("\n") == 2   # the announcement and the final line; the rest redraws one line
    assert text.count("\r\033[K") > 5 and text.endswith(f"  100%  {size / 1e6:.1f} / {size / 1e6:.1f} MB done\n")


def test_a_bad_download_keeps_nothing(served, tmp_path):
    url, sums, _ = served
    target = tmp_path / "here" / cifar10.ARCHIVE
    with pytest.raises(cifar10.ConvbenchError, match="has MD5"):
        cifar10.download(url, target, {**sums, cifar10.ARCHIVE: "0" * 32}, out=io.StringIO())
    assert list(target.parent.iterdir()) == []
