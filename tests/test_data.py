"""minillm.data: registry, verified and atomic downloads, the cache, MINILLM_DATA_DIR, splits."""

from __future__ import annotations

import hashlib
import http.server
import io
import threading
import zipfile
from functools import partial
from pathlib import Path

import pytest
import torch

from minillm import data
from minillm.data import ChecksumError, DataFile, DataUnavailableError


@pytest.fixture
def http_root(tmp_path):
    """A real HTTP server on 127.0.0.1 serving tmp_path/www; yields (folder, base_url, request_log)."""
    www = tmp_path / "www"
    www.mkdir()
    requests: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            requests.append(self.path)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(Handler, directory=str(www)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield www, f"http://127.0.0.1:{server.server_address[1]}", requests
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def isolated(monkeypatch, tmp_path):
    """No MINILLM_DATA_DIR, and an empty cache folder."""
    monkeypatch.delenv("MINILLM_DATA_DIR", raising=False)
    cache = tmp_path / "cache"
    monkeypatch.setenv("MINILLM_CACHE_DIR", str(cache))
    return cache


def _entry(name: str, payload: bytes, url: str, member: str | None = None) -> DataFile:
    return DataFile(name=name, relpath=f"{name}/file.txt", url=url,
                    sha256=hashlib.sha256(payload).hexdigest(), size=len(payload), archive_member=member)


def test_registry_matches_design():
    expected = {
        "tinyshakespeare": ("tinyshakespeare/input.txt", 1_115_394, "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"),
        "sst2-train": ("SST-2/train.tsv", 3_806_081, "48eac26399f8456935f81dd9e3a745c1430adb6c62e233ccfe22db4a0d15d1d1"),
        "sst2-dev": ("SST-2/dev.tsv", 94_931, "54a9c12c77e402fc14d6a66a506f24d999f596b0176eb777c972cccc2f9cc4b0"),
    }
    assert {k: (v.relpath, v.size, v.sha256) for k, v in data.REGISTRY.items()} == expected
    assert data.REGISTRY["tinyshakespeare"].url.startswith("https://raw.githubusercontent.com/karpathy/char-rnn/")
    assert data.REGISTRY["sst2-dev"].url == "https://dl.fbaipublicfiles.com/glue/data/SST-2.zip"


def test_real_download_from_local_server_is_verified_and_cached(http_root, isolated, monkeypatch):
    www, base, requests = http_root
    payload = ("First Citizen:\nBefore we proceed any further, hear me speak.\n" * 50).encode()
    (www / "input.txt").write_bytes(payload)
    entry = _entry("tiny", payload, f"{base}/input.txt")
    monkeypatch.setitem(data.REGISTRY, "tiny", entry)

    path = data.fetch("tiny")
    assert path == isolated / "tiny" / "file.txt"
    assert path.read_bytes() == payload
    assert requests == ["/input.txt"]
    assert [p.name for p in path.parent.iterdir()] == ["file.txt"]  # no temporary file left

    # second call: a cache hit, verified, no new request
    assert data.fetch("tiny") == path
    assert requests == ["/input.txt"]


def test_damaged_cache_is_downloaded_again(http_root, isolated, monkeypatch):
    www, base, requests = http_root
    payload = b"hello world\n" * 100
    (www / "f.txt").write_bytes(payload)
    entry = _entry("tiny", payload, f"{base}/f.txt")
    monkeypatch.setitem(data.REGISTRY, "tiny", entry)
    path = data.fetch("tiny")
    path.write_bytes(payload[:-1] + b"X")  # same size, wrong content
    assert data.fetch("tiny").read_bytes() == payload
    assert len(requests) == 2


def test_corrupted_download_is_rejected_and_removed(http_root, isolated):
    www, base, _ = http_root
    good = b"the expected bytes\n" * 10
    (www / "f.txt").write_bytes(good[:-1] + b"?")  # the server sends something else
    entry = _entry("tiny", good, f"{base}/f.txt")
    with pytest.raises(ChecksumError, match="rejected.*SHA-256"):
        data.download(entry, isolated)
    folder = isolated / "tiny"
    assert list(folder.iterdir()) == []  # neither the file nor a partial file remains


def test_truncated_download_is_rejected(http_root, isolated):
    www, base, _ = http_root
    good = b"0123456789" * 100
    (www / "f.txt").write_bytes(good[:500])
    entry = _entry("tiny", good, f"{base}/f.txt")
    with pytest.raises(ChecksumError, match="500 bytes"):
        data.download(entry, isolated)
    assert list((isolated / "tiny").iterdir()) == []


def test_zip_member_download(http_root, isolated, data_dir):
    """The SST-2 path: a zip archive is downloaded and the member is extracted and verified."""
    www, base, _ = http_root
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.write(data_dir / "SST-2" / "dev.tsv", "SST-2/dev.tsv")
        zf.writestr("SST-2/test.tsv", "sentence\n")
    (www / "SST-2.zip").write_bytes(buf.getvalue())
    real = data.REGISTRY["sst2-dev"]
    entry = DataFile(real.name, real.relpath, f"{base}/SST-2.zip", real.sha256, real.size, real.archive_member)
    path = data.download(entry, isolated)
    assert path == isolated / "SST-2" / "dev.tsv"
    assert data.sha256_of(path) == real.sha256
    assert sorted(p.name for p in path.parent.iterdir()) == ["dev.tsv"]  # archive and temp files removed


def test_zip_without_member_is_rejected(http_root, isolated):
    www, base, _ = http_root
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("other.txt", "x")
    (www / "a.zip").write_bytes(buf.getvalue())
    entry = _entry("arch", b"x", f"{base}/a.zip", member="SST-2/dev.tsv")
    with pytest.raises(ChecksumError, match="no readable"):
        data.download(entry, isolated)
    assert list((isolated / "arch").iterdir()) == []


def test_offline_error_names_url_and_folder(isolated, monkeypatch):
    # A port on 127.0.0.1 that nothing listens on: the connection is refused, as when offline.
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    entry = _entry("tiny", b"abc", f"http://127.0.0.1:{port}/input.txt")
    monkeypatch.setitem(data.REGISTRY, "tiny", entry)
    with pytest.raises(DataUnavailableError) as info:
        data.fetch("tiny", timeout=5)
    message = str(info.value)
    assert entry.url in message
    assert str(isolated / "tiny") in message
    assert "MINILLM_DATA_DIR" in message
    assert not (isolated / "tiny" / "file.txt").exists()
    assert list((isolated / "tiny").glob("*.part")) == []


def test_data_dir_copy_is_used_and_verified(data_dir, monkeypatch, tmp_path):
    monkeypatch.setenv("MINILLM_DATA_DIR", str(data_dir))
    monkeypatch.setenv("MINILLM_CACHE_DIR", str(tmp_path / "unused"))
    assert data.fetch("tinyshakespeare") == data_dir / "tinyshakespeare" / "input.txt"
    assert not (tmp_path / "unused").exists()  # nothing downloaded or cached

    bad = tmp_path / "bad"
    (bad / "tinyshakespeare").mkdir(parents=True)
    (bad / "tinyshakespeare" / "input.txt").write_text("not shakespeare")
    monkeypatch.setenv("MINILLM_DATA_DIR", str(bad))
    with pytest.raises(ChecksumError, match="tinyshakespeare should have 1,115,394 bytes"):
        data.fetch("tinyshakespeare")
    with pytest.raises(FileNotFoundError, match="SST-2/dev.tsv"):
        data.fetch("sst2-dev")


def test_unknown_name():
    with pytest.raises(KeyError, match="unknown dataset file 'shakespeare'.*tinyshakespeare"):
        data.fetch("shakespeare")


def test_default_cache_dir_is_the_user_cache(monkeypatch):
    import platformdirs

    monkeypatch.delenv("MINILLM_CACHE_DIR", raising=False)
    assert data.cache_dir() == Path(platformdirs.user_cache_dir("minillm"))


def test_loaders(data_dir, monkeypatch):
    monkeypatch.setenv("MINILLM_DATA_DIR", str(data_dir))
    text = data.load_tiny_shakespeare()
    assert len(text) == 1_115_394 and text.startswith("First Citizen:")
    train, dev = data.load_sst2("train"), data.load_sst2("dev")
    assert (len(train), len(dev)) == (67_349, 872)
    assert dev[0] == ("it 's a charming and often affecting journey .", 1)
    assert {label for _, label in train} == {0, 1}
    with pytest.raises(ValueError, match="'train' or 'dev'"):
        data.load_sst2("test")


def test_standard_split_of_tiny_shakespeare(data_dir, monkeypatch):
    monkeypatch.setenv("MINILLM_DATA_DIR", str(data_dir))
    train, val = data.train_val_split(data.load_tiny_shakespeare())
    assert (len(train), len(val)) == (1_003_854, 111_540)
    ids = torch.arange(1_115_394)
    t, v = data.train_val_split(ids)
    assert (len(t), len(v)) == (1_003_854, 111_540) and int(v[0]) == 1_003_854


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 1.5])
def test_split_rejects_bad_fraction(fraction):
    with pytest.raises(ValueError, match="val_fraction"):
        data.train_val_split("abcdef", fraction)


def test_split_rejects_empty_part():
    with pytest.raises(ValueError, match="one part would be empty"):
        data.train_val_split("a", 0.1)


def test_a_file_without_a_published_hash_is_downloaded_unchecked(http_root, isolated):
    """Files such as a tokenizer's vocab.json have no published SHA-256: sha256=None and
    size=None download them atomically without a hash check (their reader checks them)."""
    www, base, requests = http_root
    payload = b'{"a": 0}\n'
    (www / "vocab.json").write_bytes(payload)
    entry = DataFile(name="tok/vocab.json", relpath="vocab.json", url=f"{base}/vocab.json",
                     sha256=None, size=None)
    path = data.download(entry, isolated / "tok")
    assert path.read_bytes() == payload and requests == ["/vocab.json"]
    assert [p.name for p in path.parent.iterdir()] == ["vocab.json"]
