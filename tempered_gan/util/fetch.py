"""Data sets and the FID feature weights, fetched on first use: checksummed, atomic, from a mirror or not at all.

A data set whose files are missing from its folder is fetched into that folder
the first time it is loaded; the Inception and DINOv2 weights go to torch hub's
cache (``<torch.hub.get_dir()>/checkpoints``, where torchmetrics, torch-fidelity
and torch hub keep theirs). Sources and checksums are the ecosystem's own:
torchvision's ``MNIST``, ``FashionMNIST``, ``CIFAR10`` and ``CelebA`` (upstream
URLs and md5s), pytorch-fid's release of the Inception weights, whose name
carries the first 8 hex digits of its sha256 (torch hub's convention), and
Meta's release of the DINOv2 ViT-S/14 backbone, by its full sha256
(docs/DECISIONS.md, "DINOv2 features").

* Verified and atomic: a file is streamed into a temporary folder beside its
  destination, hashed on the way, fsynced, and moved into place (one rename)
  only when its checksum matches. An archive (CIFAR-10, CelebA) is checked,
  unpacked there, its members checked where torchvision knows their md5s, and
  only its members are moved; the archive is not kept. Any failure removes the
  temporary folder: the data folder never holds a partial or wrong file.
* One line per failure (a :class:`UserError`): an unreachable host, an HTTP
  error, a timeout or a checksum mismatch name the file, the URL and the
  reason; a full disk names the file (:class:`WriteError`).
* Files already present (put by hand, by Debian's package, or fetched before)
  are never fetched again nor hashed again; docs/DECISIONS.md says why.
* CelebA has no upstream here: its only source is a Google Drive share (it
  needs ``gdown``, is often over Drive's download quota, and the data's terms
  ask each user to agree to them), so it is fetched only from a mirror.

Environment: ``TEMPERED_GAN_OFFLINE=1`` never fetches (the loaders then say
where the files go); ``TEMPERED_GAN_MIRROR=URL`` fetches
``URL/<dataset>/<file>`` and ``URL/weights/<file>`` instead of the upstream
hosts (``http``, ``https`` or ``file`` URLs); ``TEMPERED_GAN_FETCH_TIMEOUT`` is
how many seconds a host may stay silent (default 15, as pip's).
"""
from __future__ import annotations

import functools
import hashlib
import http.client
import math
import os
import sys
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from tempered_gan.errors import UserError, writing

OFFLINE_ENV = "TEMPERED_GAN_OFFLINE"
MIRROR_ENV = "TEMPERED_GAN_MIRROR"
TIMEOUT_ENV = "TEMPERED_GAN_FETCH_TIMEOUT"
DEFAULT_TIMEOUT_S = 15.0
INCEPTION_URL = ("https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
                 "pt_inception-2015-12-05-6726825d.pth")
DINOV2_URL = "https://dl.fbaipublicfiles.com/dinov2/dinov2_vits14/dinov2_vits14_pretrain.pth"
DINOV2_SHA256 = "b938bf1bc15cd2ec0feacfe3a1bb553fe8ea9ca46a7e1d8d00217f29aef60cd9"   # 88 283 115 bytes
CHUNK = 1 << 20


@dataclass(frozen=True)
class Source:
    """One file to fetch.

    ``urls``: the upstream URLs, tried in turn (empty: only from a mirror).
    ``checksum``: ``"<hashlib name>:<hex digest>"``; a shorter hex is a prefix
    of the digest (the Inception file's sha256). ``unpacks_to``: for an
    archive, the folder it unpacks to; ``members``: the md5 of each member kept,
    by path below the data folder (None: every member, the archive's checksum
    alone vouching for them).
    """

    name: str
    urls: tuple[str, ...]
    checksum: str
    unpacks_to: str = ""
    members: tuple[tuple[str, str], ...] | None = None


@functools.cache
def sources() -> dict[str, tuple[Source, ...]]:
    """What each data set (and ``"weights"``) fetches: a table built once from torchvision's own."""
    from torchvision.datasets import CIFAR10, MNIST, CelebA, FashionMNIST

    table = {name: tuple(Source(f, tuple(m + f for m in cls.mirrors), f"md5:{md5}") for f, md5 in cls.resources)
             for name, cls in (("mnist", MNIST), ("fashion-mnist", FashionMNIST))}
    batches = [*CIFAR10.train_list, *CIFAR10.test_list, (CIFAR10.meta["filename"], CIFAR10.meta["md5"])]
    table["cifar10"] = (Source(CIFAR10.filename, (CIFAR10.url,), f"md5:{CIFAR10.tgz_md5}", CIFAR10.base_folder,
                               tuple((f"{CIFAR10.base_folder}/{f}", md5) for f, md5 in batches)),)
    celeba_md5 = next(md5 for _, md5, f in CelebA.file_list if f == "img_align_celeba.zip")
    table["celeba"] = (Source("img_align_celeba.zip", (), f"md5:{celeba_md5}", "img_align_celeba"),)
    table["weights"] = (Source(INCEPTION_URL.rsplit("/", 1)[1], (INCEPTION_URL,), "sha256:6726825d"),
                        Source(DINOV2_URL.rsplit("/", 1)[1], (DINOV2_URL,), f"sha256:{DINOV2_SHA256}"))
    return table


def offline() -> bool:
    """``$TEMPERED_GAN_OFFLINE`` is set to a true value (1, true, yes, on)."""
    text = os.environ.get(OFFLINE_ENV, "").strip().lower()
    if text in ("", "0", "false", "no", "off"):
        return False
    if text in ("1", "true", "yes", "on"):
        return True
    raise UserError(f"{OFFLINE_ENV} must be 1 (never fetch) or 0, got {os.environ[OFFLINE_ENV]!r}")


def mirror() -> str | None:
    """``$TEMPERED_GAN_MIRROR`` without a trailing slash, or None."""
    url = os.environ.get(MIRROR_ENV, "").strip().rstrip("/")
    if url and not url.startswith(("http://", "https://", "file:/")):
        raise UserError(f"{MIRROR_ENV} must be an http://, https:// or file:// URL, got {url!r}")
    return url or None


def fetch_timeout() -> float:
    """Seconds a host may stay silent (connecting or between two reads): ``$TEMPERED_GAN_FETCH_TIMEOUT`` or 15."""
    text = os.environ.get(TIMEOUT_ENV, "")
    try:
        seconds = float(text) if text else DEFAULT_TIMEOUT_S
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds > 0):
        raise UserError(f"{TIMEOUT_ENV} must be a positive number of seconds, got {text!r}")
    return seconds


def fetch_dataset(name: str, folder: Path) -> bool:
    """Fetch into ``folder`` the files of data set ``name`` it lacks (both splits).

    ``folder`` may also be the folder an archive unpacks to (``cifar-10-batches-py``,
    ``img_align_celeba``). Returns False, having done nothing, when offline or when
    the set has no source (CelebA without a mirror): the caller then says where
    the files go. Raises one-line :class:`UserError` when a fetch fails.
    """
    return _fetch(name, name, Path(folder), "pass --data-dir or set TEMPERED_GAN_DATA")


def fetch_weights(file_name: str, folder: Path, what: str) -> bool:
    """Fetch the weights file ``file_name`` (``what``: "Inception FID weights", …) into ``folder``; as
    :func:`fetch_dataset`."""
    return _fetch("weights", what, Path(folder), "set TORCH_HOME", only=file_name)


def _fetch(key: str, what: str, folder: Path, elsewhere: str, only: str | None = None) -> bool:
    if offline():
        return False
    base, timeout = mirror(), fetch_timeout()
    root = next((folder.parent for s in sources()[key] if s.unpacks_to and folder.name == s.unpacks_to), folder)
    todo = [s for s in sources()[key] if (only is None or s.name == only) and not _present(root, s)]
    if not todo or not (base or all(s.urls for s in todo)):
        return False
    where = f"{base}/{key}/" if base else todo[0].urls[0].rsplit("/", 1)[0] + "/"
    print(f"{what}: fetching {', '.join(s.name for s in todo)} from {where} into {root}", file=sys.stderr)
    added = _Added(folders=[p for p in (root, *root.parents) if not p.exists()])
    try:
        _fetch_into(what, key, root, todo, base, timeout, elsewhere, added)
    except BaseException:
        added.undo()
        raise
    return True


@dataclass
class _Added:
    """What one fetch put on disk: the files it moved into place and the folders it made.
    When the fetch fails they are removed again (files, then folders, deepest first), so it
    leaves nothing behind; a folder that also holds something else stays."""

    folders: list[Path]
    files: list[Path] = field(default_factory=list)

    def make_folder(self, folder: Path) -> None:
        self.folders += [p for p in (folder, *folder.parents) if not p.exists()]
        folder.mkdir(parents=True, exist_ok=True)

    def undo(self) -> None:
        for path in self.files:
            path.unlink(missing_ok=True)
        for folder in sorted(set(self.folders), key=lambda d: len(d.parts), reverse=True):
            try:
                folder.rmdir()
            except OSError:
                pass                     # not empty (someone else's files), or already gone


def _fetch_into(what: str, key: str, root: Path, todo: list, base: str | None, timeout: float, elsewhere: str,
                added: _Added) -> None:
    try:
        root.mkdir(parents=True, exist_ok=True)
        scratch = tempfile.TemporaryDirectory(dir=root, prefix=".fetch-", ignore_cleanup_errors=True)
    except OSError as exc:
        raise UserError(f"{what}: cannot fetch into {root}: {exc.strerror or exc}; put the files there by hand, "
                        f"or {elsewhere} to name a writable folder") from None
    with scratch as tmp:
        for s in todo:
            path = Path(tmp) / s.name
            urls = (f"{base}/{key}/{s.name}",) if base else s.urls
            failures = []
            for url in urls:
                reason = _download(url, path, s.checksum, root / s.name, timeout)
                if reason is None:
                    break
                failures.append(f"{url}: {reason}")
            else:
                raise UserError(f"{what}: cannot fetch {s.name} from {'; '.join(failures)}; nothing was kept in {root}")
            if s.unpacks_to:
                _unpack(what, path, Path(tmp) / "unpacked", root, s, added)
            else:
                os.replace(path, root / s.name)
                added.files.append(root / s.name)


def _present(root: Path, source: Source) -> bool:
    """The file (IDX: compressed or not) or, for an archive, every member it keeps is in ``root``."""
    if source.unpacks_to:
        if source.members is None:
            return (root / source.unpacks_to).is_dir() and any((root / source.unpacks_to).iterdir())
        return all((root / member).is_file() for member, _ in source.members)
    return (root / source.name).is_file() or (root / source.name.removesuffix(".gz")).is_file()


def _download(url: str, path: Path, checksum: str, dest: Path, timeout: float) -> str | None:
    """Stream ``url`` into ``path`` (fsynced), hashing it on the way; the reason it failed, or None.

    Only network failures and a checksum mismatch are returned (the next URL may
    do better); a failed write raises a :class:`WriteError` naming ``dest``.
    """
    from tqdm import tqdm

    algorithm, _, expected = checksum.partition(":")
    digest = hashlib.new(algorithm)
    request = urllib.request.Request(url, headers={"User-Agent": "tempered-gan"})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except (OSError, http.client.HTTPException, ValueError) as exc:
        return _reason(exc, timeout)
    bar = tqdm(total=getattr(response, "length", None), unit="B", unit_scale=True, unit_divisor=1024, desc=dest.name,
               leave=False, disable=not sys.stderr.isatty())      # a progress bar on a terminal only, never in logs
    with response, bar, writing(dest), open(path, "wb") as f:
        while True:
            try:
                chunk = response.read(CHUNK)
            except (OSError, http.client.HTTPException) as exc:
                return _reason(exc, timeout)
            if not chunk:
                break
            digest.update(chunk)
            f.write(chunk)
            bar.update(len(chunk))
        f.flush()
        os.fsync(f.fileno())
    found = digest.hexdigest()
    if not (expected and found.startswith(expected)):
        return f"{algorithm} checksum mismatch (got {found[:len(expected)]}, expected {expected})"
    return None


def _reason(exc: BaseException, timeout: float) -> str:
    """One short phrase for a failed request."""
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    cause = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    if isinstance(cause, TimeoutError):
        return f"no answer within {timeout:g} s ({TIMEOUT_ENV})"
    if isinstance(cause, OSError) and cause.strerror:
        return cause.strerror[0].lower() + cause.strerror[1:]
    return str(cause) or type(cause).__name__


def _unpack(what: str, archive: Path, unpacked: Path, root: Path, source: Source, added: _Added) -> None:
    """Unpack a verified archive into ``unpacked``, check the members torchvision has md5s for, move them to
    ``root`` (recorded in ``added``)."""
    from torchvision.datasets.utils import check_integrity, extract_archive

    with writing(root / source.unpacks_to):
        extract_archive(str(archive), str(unpacked))
    members = source.members or tuple((p.relative_to(unpacked).as_posix(), "")
                                      for p in sorted((unpacked / source.unpacks_to).rglob("*")) if p.is_file())
    if not members:
        raise UserError(f"{what}: {archive.name} holds no {source.unpacks_to}/; nothing was kept in {root}")
    bad = [m for m, md5 in members if not check_integrity(unpacked / m, md5 or None)]
    if bad:
        raise UserError(f"{what}: {archive.name} passed its checksum but {', '.join(bad)} in it did not; "
                        f"nothing was kept in {root}")
    os.sync()   # the members' bytes are on disk before any of them is given its final name
    with writing(root / source.unpacks_to):
        for member, _ in members:
            dest = root / member
            if not dest.exists():
                added.make_folder(dest.parent)
                os.replace(unpacked / member, dest)
                added.files.append(dest)
