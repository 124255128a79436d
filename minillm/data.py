"""Datasets used by the book: a registry, verified downloads and a local cache.

Every file the book reads is listed in :data:`REGISTRY` with its canonical URL and
its SHA-256. :func:`fetch` returns a local path to a verified copy:

1. If ``MINILLM_DATA_DIR`` is set, the file must be in that folder (a ready copy,
   as CI uses); it is verified and returned. Nothing is downloaded.
2. Otherwise the cache folder (``MINILLM_CACHE_DIR``, else the user's cache
   folder, e.g. ``~/.cache/minillm`` on Linux) is used; a cached copy is verified
   and returned.
3. Otherwise the file is downloaded, verified, and moved into the cache in one
   atomic rename: a failed or corrupted download never leaves a file behind.

Offline with no copy, :class:`DataUnavailableError` names the URL and the folder
to put the file in.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence, TypeVar

__all__ = [
    "DataFile",
    "REGISTRY",
    "DataUnavailableError",
    "ChecksumError",
    "cache_dir",
    "fetch",
    "download",
    "sha256_of",
    "load_tiny_shakespeare",
    "load_sst2",
    "train_val_split",
]

DATA_DIR_ENV = "MINILLM_DATA_DIR"
CACHE_DIR_ENV = "MINILLM_CACHE_DIR"


@dataclass(frozen=True)
class DataFile:
    """One file of a dataset.

    Attributes:
        name: registry key, e.g. ``"tinyshakespeare"``.
        relpath: where the file lives below a data or cache folder.
        url: where to download it from.
        sha256: the expected SHA-256 of the file (hex), or None where no hash is
            published (the file is then not checked here: its reader checks it).
        size: the expected size in bytes, or None where it is not known.
        archive_member: if the URL serves a zip archive, the member to extract.
    """

    name: str
    relpath: str
    url: str
    sha256: str | None
    size: int | None
    archive_member: str | None = None


_GLUE_SST2 = "https://dl.fbaipublicfiles.com/glue/data/SST-2.zip"

REGISTRY: dict[str, DataFile] = {
    f.name: f
    for f in [
        DataFile(
            name="tinyshakespeare",
            relpath="tinyshakespeare/input.txt",
            url="https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",
            sha256="86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",
            size=1_115_394,
        ),
        DataFile(
            name="sst2-train",
            relpath="SST-2/train.tsv",
            url=_GLUE_SST2,
            sha256="48eac26399f8456935f81dd9e3a745c1430adb6c62e233ccfe22db4a0d15d1d1",
            size=3_806_081,
            archive_member="SST-2/train.tsv",
        ),
        DataFile(
            name="sst2-dev",
            relpath="SST-2/dev.tsv",
            url=_GLUE_SST2,
            sha256="54a9c12c77e402fc14d6a66a506f24d999f596b0176eb777c972cccc2f9cc4b0",
            size=94_931,
            archive_member="SST-2/dev.tsv",
        ),
    ]
}


class DataUnavailableError(RuntimeError):
    """The file is neither in ``MINILLM_DATA_DIR``, nor cached, nor downloadable."""


class ChecksumError(ValueError):
    """A file's size or SHA-256 differs from the registry's."""


def cache_dir() -> Path:
    """The folder downloads are cached in: ``$MINILLM_CACHE_DIR`` or the user's cache folder."""
    env = os.environ.get(CACHE_DIR_ENV)
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("minillm"))


def sha256_of(path: str | os.PathLike) -> str:
    """SHA-256 (hex) of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _verify(path: Path, entry: DataFile) -> None:
    size = path.stat().st_size
    if entry.size is not None and size != entry.size:
        raise ChecksumError(
            f"{path} has {size:,} bytes, but {entry.name} should have {entry.size:,} bytes"
        )
    if entry.sha256 is None:
        return
    got = sha256_of(path)
    if got != entry.sha256:
        raise ChecksumError(
            f"{path} has SHA-256 {got}, but {entry.name} should have {entry.sha256}"
        )


def _lookup(name: str | DataFile) -> DataFile:
    if isinstance(name, DataFile):
        return name
    try:
        return REGISTRY[name]
    except KeyError:
        raise KeyError(
            f"unknown dataset file {name!r}; known: {', '.join(sorted(REGISTRY))}"
        ) from None


def fetch(name: str | DataFile, *, timeout: float = 60.0) -> Path:
    """Return the local path of a verified copy of a registered file.

    Args:
        name: a key of :data:`REGISTRY` (``"tinyshakespeare"``, ``"sst2-train"``,
            ``"sst2-dev"``) or a :class:`DataFile`.
        timeout: seconds to wait for the server before giving up.

    Raises:
        DataUnavailableError: offline (or the server failed) and no local copy.
        ChecksumError: the copy in ``MINILLM_DATA_DIR`` is not the expected file,
            or a download arrived corrupted (it is deleted, nothing is kept).
        FileNotFoundError: ``MINILLM_DATA_DIR`` is set but lacks the file.
    """
    entry = _lookup(name)
    ready = os.environ.get(DATA_DIR_ENV)
    if ready:
        path = Path(ready).expanduser() / entry.relpath
        if not path.is_file():
            raise FileNotFoundError(
                f"{DATA_DIR_ENV}={ready} is set, but {path} does not exist. Put "
                f"{entry.relpath} there (from {entry.url}), or unset {DATA_DIR_ENV} "
                "to download into the cache."
            )
        _verify(path, entry)
        return path

    path = cache_dir() / entry.relpath
    if path.is_file():
        try:
            _verify(path, entry)
            return path
        except ChecksumError:
            path.unlink()  # a stale or damaged copy: fetch it again
    return download(entry, cache_dir(), timeout=timeout)


def download(
    entry: DataFile, root: str | os.PathLike, *, timeout: float = 60.0
) -> Path:
    """Download ``entry`` into ``root / entry.relpath``, verify it, and return the path.

    The bytes go to a temporary file in the destination folder, which is renamed
    into place only after the size and SHA-256 match, so an interrupted or
    corrupted download never leaves a file at the destination.
    """
    root = Path(root)
    dest = root / entry.relpath
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{dest.name}.", suffix=".part", dir=dest.parent
    )
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                with urllib.request.urlopen(entry.url, timeout=timeout) as response:
                    shutil.copyfileobj(response, out, 1 << 20)
            except (urllib.error.URLError, OSError) as err:
                raise DataUnavailableError(
                    f"could not download {entry.name} from {entry.url} ({err}). "
                    f"If you are offline, download it by hand and save it as {dest} "
                    f"(the folder {dest.parent}), or set {DATA_DIR_ENV} to a folder that "
                    f"holds {entry.relpath}."
                ) from err
        if entry.archive_member is not None:
            tmp = _extract_member(tmp, entry.archive_member, dest.parent)
        try:
            _verify(tmp, entry)
        except ChecksumError as err:
            raise ChecksumError(f"download from {entry.url} rejected: {err}") from None
        os.replace(tmp, dest)
        return dest
    finally:
        if tmp.exists() and tmp != dest:
            tmp.unlink()


def _extract_member(archive: Path, member: str, folder: Path) -> Path:
    """Extract one member of a zip archive to a temporary file in ``folder``; delete the archive."""
    fd, tmp_name = tempfile.mkstemp(prefix=".member.", suffix=".part", dir=folder)
    tmp = Path(tmp_name)
    try:
        with (
            zipfile.ZipFile(archive) as zf,
            zf.open(member) as src,
            os.fdopen(fd, "wb") as dst,
        ):
            shutil.copyfileobj(src, dst, 1 << 20)
    except (zipfile.BadZipFile, KeyError) as err:
        tmp.unlink(missing_ok=True)
        raise ChecksumError(
            f"the downloaded archive has no readable {member!r}: {err}"
        ) from None
    finally:
        archive.unlink(missing_ok=True)
    return tmp


def load_tiny_shakespeare() -> str:
    """The tiny Shakespeare corpus (1,115,394 characters) as one string."""
    return fetch("tinyshakespeare").read_text(encoding="utf-8")


def load_sst2(split: str) -> list[tuple[str, int]]:
    """SST-2 sentences and labels (0 = negative, 1 = positive).

    Args:
        split: ``"train"`` (67,349 rows) or ``"dev"`` (872 rows).
    """
    if split not in ("train", "dev"):
        raise ValueError(f"split must be 'train' or 'dev', got {split!r}")
    lines = fetch(f"sst2-{split}").read_text(encoding="utf-8").splitlines()
    header, rows = lines[0].split("\t"), lines[1:]
    if header != ["sentence", "label"]:
        raise ValueError(f"unexpected SST-2 header {header}")
    out = []
    for row in rows:
        sentence, label = row.rsplit("\t", 1)
        out.append((sentence.strip(), int(label)))
    return out


S = TypeVar("S", bound=Sequence)


def train_val_split(data: S, val_fraction: float = 0.1) -> tuple[S, S]:
    """Split a sequence (a string, a list, a 1-D tensor) into a leading train part and a trailing val part.

    The first ``int(len(data) * (1 - val_fraction))`` items are for training, as
    in nanoGPT. For tiny Shakespeare that is 1,003,854 / 111,540 characters.
    """
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(
            f"val_fraction must be strictly between 0 and 1, got {val_fraction}"
        )
    n_train = int(len(data) * (1 - val_fraction))
    if n_train == 0 or n_train == len(data):
        raise ValueError(
            f"cannot split {len(data)} items with val_fraction={val_fraction}: one part would be empty"
        )
    return data[:n_train], data[n_train:]
