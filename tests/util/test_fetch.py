"""Data sets and the Inception weights fetched on first use, checksummed, from a mirror or not at all.

Every fetch here is from a loopback HTTP server (127.0.0.1) that the test starts and that counts the
requests; the rest of the suite runs offline (tests/conftest.py). The served files are tiny fakes, so the
success paths supply their checksums by patching the table (``fetch.sources()``); the table's real values
are pinned separately, and the real table is what refuses fake bytes under the upstream names.
"""
import hashlib
import http.server
import io
import socket
import tarfile
import threading
import time
import zipfile
from pathlib import Path

import pytest
import torch
from helpers import TINY_IMAGES_ARGS, solid, write_cifar, write_image, write_mnist
from test_diskfull import full_disk, one_line  # noqa: F401  (full_disk is a fixture)

from tempered_gan import metrics as M
from tempered_gan.cli.main import main
from tempered_gan.data.loaders import load_dataset
from tempered_gan.errors import UserError
from tempered_gan.metrics import features as metric_features
from tempered_gan.util import fetch

TINY_MNIST = [*TINY_IMAGES_ARGS, "--steps", 2, "--k", 1, "--log-every", 1, "--no-progress"]
IDX_FILES = ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
             "t10k-labels-idx1-ubyte.gz"]


def run(*argv):
    return main([str(a) for a in argv])


def md5(raw: bytes) -> str:
    return hashlib.md5(raw).hexdigest()


class Mirror:
    """A loopback HTTP server: ``files`` maps URL paths to bytes (others are 404); ``requests`` lists the paths asked for."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.requests: list[str] = []
        mirror = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                mirror.requests.append(self.path)
                body = mirror.files.get(self.path)
                self.send_response(200 if body is not None else 404)
                self.send_header("Content-Length", str(len(body or b"")))
                self.end_headers()
                self.wfile.write(body or b"")

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture()
def mirror(tmp_path, monkeypatch):
    """A served, empty mirror in TEMPERED_GAN_MIRROR, fetching allowed, data sets under tmp_path/data."""
    server = Mirror()
    monkeypatch.delenv("TEMPERED_GAN_OFFLINE")
    monkeypatch.setenv("TEMPERED_GAN_MIRROR", server.url)
    monkeypatch.setenv("TEMPERED_GAN_DATA", str(tmp_path / "data"))
    yield server
    server.close()


def tiny_mnist(tmp_path: Path) -> dict[str, bytes]:
    """The four IDX .gz files of a tiny MNIST (64 train, 16 test images), by file name."""
    folder = write_mnist(tmp_path / "made", n=64, n_test=16, gz=True)
    return {name: (folder / name).read_bytes() for name in IDX_FILES}


def serve(server: Mirror, dataset: str, files: dict[str, bytes]) -> None:
    server.files.update({f"/{dataset}/{name}": raw for name, raw in files.items()})


def trust(monkeypatch, dataset: str, files: dict[str, bytes], **archive) -> None:
    """Make ``files`` the known-good files of ``dataset`` (their md5s in the table), as a test-supplied checksum."""
    monkeypatch.setitem(fetch.sources(), dataset, tuple(
        fetch.Source(name, (), f"md5:{md5(raw)}", **archive) for name, raw in files.items()))


def leftovers(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.exists() else []


# --- the table ------------------------------------------------------------------

def test_the_table_holds_the_upstream_files_and_checksums():
    table = fetch.sources()
    mnist = {s.name: s for s in table["mnist"]}
    assert sorted(mnist) == sorted(IDX_FILES)
    assert mnist["train-images-idx3-ubyte.gz"].checksum == "md5:f68b3c2dcbeaaa9fbdd348bbdeb94873"
    assert mnist["t10k-labels-idx1-ubyte.gz"].checksum == "md5:ec29112dd5afa0611ce80d1b7f02629c"
    assert mnist["train-images-idx3-ubyte.gz"].urls[0] == \
        "https://ossci-datasets.s3.amazonaws.com/mnist/train-images-idx3-ubyte.gz"
    fashion = {s.name: s for s in table["fashion-mnist"]}
    assert fashion["train-images-idx3-ubyte.gz"].checksum == "md5:8d4fb7e6c68d591d4c3dfef9ec88bf0d"
    (cifar,) = table["cifar10"]
    assert (cifar.name, cifar.checksum, cifar.unpacks_to) == (
        "cifar-10-python.tar.gz", "md5:c58f30108f718f92721af3b95e74349a", "cifar-10-batches-py")
    assert cifar.urls == ("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",)
    assert dict(cifar.members)["cifar-10-batches-py/data_batch_1"] == "c99cafc152244af753f735de768cd75f"
    assert dict(cifar.members)["cifar-10-batches-py/test_batch"] == "40351d587109b95175f43aff81a1287e"
    (celeba,) = table["celeba"]
    assert (celeba.name, celeba.urls, celeba.checksum) == ("img_align_celeba.zip", (),
                                                           "md5:00d2c5bc6d35e252742224ab0c1e8fcb")
    inception, dinov2 = table["weights"]
    assert inception.name == M.INCEPTION_FILE and inception.checksum == "sha256:6726825d"
    assert inception.name.endswith("-6726825d.pth") and inception.urls[0].endswith("/" + M.INCEPTION_FILE)
    assert (dinov2.name, dinov2.urls, dinov2.checksum) == (
        M.DINOV2_FILE, ("https://dl.fbaipublicfiles.com/dinov2/dinov2_vits14/dinov2_vits14_pretrain.pth",),
        "sha256:b938bf1bc15cd2ec0feacfe3a1bb553fe8ea9ca46a7e1d8d00217f29aef60cd9")


# --- data sets -------------------------------------------------------------------

def test_train_fetches_mnist_from_the_mirror_once(tmp_path, mirror, monkeypatch, capsys):
    files = tiny_mnist(tmp_path)
    serve(mirror, "mnist", files)
    trust(monkeypatch, "mnist", files)
    assert run("train", *TINY_MNIST, "--out", tmp_path / "run") == 0
    folder = tmp_path / "data" / "mnist"
    assert leftovers(folder) == sorted(IDX_FILES)                        # no temporary file or folder
    assert all((folder / name).read_bytes() == raw for name, raw in files.items())
    assert sorted(mirror.requests) == sorted(f"/mnist/{name}" for name in IDX_FILES)
    assert f"mnist: fetching {', '.join(IDX_FILES)} from {mirror.url}/mnist/ into {folder}" in capsys.readouterr().err
    assert run("train", *TINY_MNIST, "--out", tmp_path / "again") == 0     # present files are never fetched again
    assert len(mirror.requests) == 4
    assert len(load_dataset("color-mnist", split="test")) == 16


def test_only_the_missing_files_are_fetched_and_raw_files_count_as_present(tmp_path, mirror, monkeypatch):
    files = tiny_mnist(tmp_path)
    serve(mirror, "mnist", files)
    trust(monkeypatch, "mnist", files)
    folder = write_mnist(tmp_path / "data" / "mnist", n=64, n_test=16)     # uncompressed files, as Debian's or by hand
    (folder / "t10k-labels-idx1-ubyte").unlink()
    assert len(load_dataset("mnist", split="test")) == 16
    assert mirror.requests == ["/mnist/t10k-labels-idx1-ubyte.gz"]


def test_right_names_wrong_bytes_give_one_line_naming_the_checksum_and_keep_nothing(tmp_path, mirror, capsys):
    serve(mirror, "mnist", tiny_mnist(tmp_path))                       # the real table: these are not MNIST's bytes
    assert run("train", *TINY_MNIST, "--out", tmp_path / "run") == 2
    line = one_line(capsys, 2)
    folder = tmp_path / "data" / "mnist"
    assert f"mnist: cannot fetch train-images-idx3-ubyte.gz from {mirror.url}/mnist/train-images-idx3-ubyte.gz: " \
           "md5 checksum mismatch" in line and "expected f68b3c2dcbeaaa9fbdd348bbdeb94873" in line, line
    assert f"nothing was kept in {folder}" in line
    assert not (tmp_path / "data").exists() and mirror.requests == ["/mnist/train-images-idx3-ubyte.gz"]


def test_http_404_is_one_line(tmp_path, mirror, capsys):
    assert run("train", *TINY_MNIST, "--out", tmp_path / "run") == 2   # the mirror serves nothing: 404
    assert "train-images-idx3-ubyte.gz" in (line := one_line(capsys, 2)) and "HTTP 404 Not Found" in line
    assert not (tmp_path / "data").exists()             # no folder left behind either


def test_a_fetch_that_fails_part_way_removes_what_it_fetched_and_the_folders_it_made(tmp_path, mirror, monkeypatch,
                                                                                      capsys):
    files = tiny_mnist(tmp_path)
    trust(monkeypatch, "mnist", files)
    serve(mirror, "mnist", {name: raw for name, raw in files.items() if name != IDX_FILES[-1]})   # the last is 404
    assert run("train", *TINY_MNIST, "--out", tmp_path / "run") == 2
    assert IDX_FILES[-1] in one_line(capsys, 2)
    assert len(mirror.requests) == 4 and not (tmp_path / "data").exists()
    kept = tmp_path / "data" / "mnist"                  # a folder that was there before keeps what it held
    kept.mkdir(parents=True)
    (kept / "notes.txt").write_text("mine")
    assert run("train", *TINY_MNIST, "--out", tmp_path / "run") == 2
    assert leftovers(tmp_path / "data") == ["mnist", "mnist/notes.txt"]


@pytest.fixture()
def silent_port():
    """A port that accepts connections and never answers."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        yield s.getsockname()[1]


@pytest.fixture()
def closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return port


@pytest.mark.parametrize("port,reason", [("closed_port", "connection refused"),
                                         ("silent_port", "no answer within 0.5 s (TEMPERED_GAN_FETCH_TIMEOUT)")])
def test_an_unreachable_mirror_is_one_line_within_a_minute(tmp_path, monkeypatch, capsys, request, port, reason):
    monkeypatch.delenv("TEMPERED_GAN_OFFLINE")
    monkeypatch.setenv("TEMPERED_GAN_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("TEMPERED_GAN_FETCH_TIMEOUT", "0.5")
    monkeypatch.setenv("TEMPERED_GAN_MIRROR", f"http://127.0.0.1:{request.getfixturevalue(port)}")
    start = time.monotonic()
    assert run("train", *TINY_MNIST, "--out", tmp_path / "run") == 2
    assert time.monotonic() - start < 60
    line = one_line(capsys, 2)
    assert "cannot fetch train-images-idx3-ubyte.gz" in line and reason in line, line
    assert not (tmp_path / "data").exists()


def test_offline_makes_no_request_and_says_where_the_files_go(tmp_path, mirror, monkeypatch, capsys):
    serve(mirror, "mnist", tiny_mnist(tmp_path))
    monkeypatch.setenv("TEMPERED_GAN_OFFLINE", "1")
    assert run("train", *TINY_MNIST, "--out", tmp_path / "run") == 2
    line = one_line(capsys, 2)
    assert f"mnist: missing train-images-idx3-ubyte[.gz] and train-labels-idx1-ubyte[.gz] in {tmp_path / 'data' / 'mnist'}" \
           in line and "nothing is downloaded" in line
    assert mirror.requests == [] and not (tmp_path / "data").exists()


def test_a_full_disk_during_a_fetch_is_one_line_and_keeps_nothing(tmp_path, mirror, monkeypatch, capsys,
                                                                   full_disk):  # noqa: F811
    files = tiny_mnist(tmp_path)
    serve(mirror, "mnist", files)
    trust(monkeypatch, "mnist", files)
    folder = tmp_path / "data" / "mnist"
    full_disk(folder)
    assert run("train", *TINY_MNIST, "--out", tmp_path / "run") == 2
    line = one_line(capsys, 2)
    assert f"cannot write {folder / 'train-images-idx3-ubyte.gz'}: No space left on device" in line
    assert leftovers(folder) == []


def test_a_folder_that_cannot_be_written_says_where_the_files_go(tmp_path, mirror, monkeypatch):
    files = tiny_mnist(tmp_path)
    serve(mirror, "mnist", files)
    trust(monkeypatch, "mnist", files)
    (tmp_path / "data").write_text("a file where the data folder should be")
    with pytest.raises(UserError, match=r"mnist: cannot fetch into .*data/mnist: .*; put the files there by hand, "
                                        r"or pass --data-dir or set TEMPERED_GAN_DATA"):
        load_dataset("mnist")
    assert mirror.requests == []


@pytest.mark.parametrize("env,value,message", [
    ("TEMPERED_GAN_OFFLINE", "maybe", "TEMPERED_GAN_OFFLINE must be 1"),
    ("TEMPERED_GAN_MIRROR", "mirror.example.org", "TEMPERED_GAN_MIRROR must be an http://"),
    ("TEMPERED_GAN_FETCH_TIMEOUT", "-1", "TEMPERED_GAN_FETCH_TIMEOUT must be a positive number"),
])
def test_bad_settings_are_one_line(tmp_path, mirror, monkeypatch, env, value, message):
    monkeypatch.setenv(env, value)
    with pytest.raises(UserError, match=message):
        load_dataset("mnist")
    assert mirror.requests == []


def cifar_archive(tmp_path: Path) -> tuple[bytes, dict[str, str]]:
    """A tiny cifar-10-python.tar.gz and the md5 of each member, by path."""
    folder = write_cifar(tmp_path / "made")
    (folder / "batches.meta").write_bytes(b"meta")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(folder, arcname="cifar-10-batches-py")
    return buffer.getvalue(), {f"cifar-10-batches-py/{p.name}": md5(p.read_bytes()) for p in folder.iterdir()}


@pytest.mark.parametrize("damaged", [False, True])
def test_cifar10_is_fetched_checked_and_unpacked_without_keeping_the_archive(tmp_path, mirror, monkeypatch, damaged):
    archive, members = cifar_archive(tmp_path)
    if damaged:                                   # the archive is the trusted one, a member is not what it should be
        members["cifar-10-batches-py/data_batch_3"] = "0" * 32
    serve(mirror, "cifar10", {"cifar-10-python.tar.gz": archive})
    trust(monkeypatch, "cifar10", {"cifar-10-python.tar.gz": archive}, unpacks_to="cifar-10-batches-py",
          members=tuple(members.items()))
    folder = tmp_path / "data" / "cifar10"
    if damaged:
        with pytest.raises(UserError, match="cifar-10-batches-py/data_batch_3 in it did not; nothing was kept"):
            load_dataset("cifar10")
        assert not (tmp_path / "data").exists()
        return
    assert len(load_dataset("cifar10", split="test")) == 2
    assert leftovers(folder) == ["cifar-10-batches-py", *sorted(members)]
    assert mirror.requests == ["/cifar10/cifar-10-python.tar.gz"]


def test_celeba_is_fetched_from_a_mirror_only(tmp_path, mirror, monkeypatch):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        for i in range(3):
            jpg = tmp_path / f"{i:06d}.jpg"
            write_image(jpg, solid(218, 178, (40 * i, 0, 0)))
            z.write(jpg, f"img_align_celeba/{i:06d}.jpg")
    archive = buffer.getvalue()
    monkeypatch.setenv("TEMPERED_GAN_MIRROR", "")
    with pytest.raises(UserError, match=r"celeba: no img_align_celeba/\*\.jpg .*fetched only from TEMPERED_GAN_MIRROR"):
        load_dataset("celeba")                  # no upstream: nothing is asked of anyone
    monkeypatch.setenv("TEMPERED_GAN_MIRROR", mirror.url)
    serve(mirror, "celeba", {"img_align_celeba.zip": archive})
    trust(monkeypatch, "celeba", {"img_align_celeba.zip": archive}, unpacks_to="img_align_celeba")
    assert len(load_dataset("celeba", cache_dir=str(tmp_path / "cache"))) == 3
    assert leftovers(tmp_path / "data" / "celeba") == ["img_align_celeba",
                                                       *(f"img_align_celeba/{i:06d}.jpg" for i in range(3))]


# --- the Inception weights -----------------------------------------------------------

@pytest.fixture()
def hub(tmp_path, mirror, monkeypatch):
    """torch hub's cache under tmp_path (TORCH_HOME), and a fake weights file served by the mirror."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv("TEMPERED_GAN_INCEPTION", raising=False)
    buffer = io.BytesIO()
    torch.save({"Mixed_7c.branch_pool.conv.weight": torch.zeros(1)}, buffer)
    serve(mirror, "weights", {M.INCEPTION_FILE: buffer.getvalue()})
    return Path(torch.hub.get_dir()) / "checkpoints"


def test_inception_weights_are_fetched_into_the_hub_cache(hub, mirror, monkeypatch):
    raw = mirror.files[f"/weights/{M.INCEPTION_FILE}"]
    prefix = hashlib.sha256(raw).hexdigest()[:8]          # the fake's own sha256 prefix, as the real name carries its
    monkeypatch.setitem(fetch.sources(), "weights", (fetch.Source(M.INCEPTION_FILE, (), f"sha256:{prefix}"),))
    assert M.inception_weights_path() == hub / M.INCEPTION_FILE
    assert (hub / M.INCEPTION_FILE).read_bytes() == raw and leftovers(hub) == [M.INCEPTION_FILE]
    assert metric_features._check_inception_file(hub / M.INCEPTION_FILE) == hashlib.sha256(raw).hexdigest()[:16]
    assert M.inception_weights_path() == hub / M.INCEPTION_FILE and len(mirror.requests) == 1   # cached now


def test_inception_weights_with_the_wrong_sha256_are_not_kept(hub, mirror):
    with pytest.raises(UserError) as info:
        M.inception_weights_path()
    message = str(info.value)
    assert "\n" not in message and f"Inception FID weights: cannot fetch {M.INCEPTION_FILE}" in message
    assert "sha256 checksum mismatch" in message and "expected 6726825d" in message
    assert not hub.exists()


def test_a_given_weights_path_is_never_fetched(tmp_path, hub, mirror):
    with pytest.raises(UserError, match="given.pth"):
        M.inception_weights_path(str(tmp_path / "given.pth"))
    assert mirror.requests == []


def test_dinov2_weights_are_fetched_into_the_hub_cache_by_their_full_sha256(hub, mirror, monkeypatch):
    """As the Inception weights: from the mirror into torch hub's cache, once; the real table refuses bytes that are
    not Meta's file and keeps nothing."""
    monkeypatch.delenv("TEMPERED_GAN_DINOV2", raising=False)
    raw = b"stand-in for dinov2_vits14_pretrain.pth"
    serve(mirror, "weights", {M.DINOV2_FILE: raw})
    with pytest.raises(UserError) as info:
        M.dinov2_weights_path()
    message = str(info.value)
    assert "\n" not in message and f"DINOv2 weights: cannot fetch {M.DINOV2_FILE}" in message
    assert "sha256 checksum mismatch" in message and "expected b938bf1bc15cd2ec" in message and not hub.exists()
    trusted = fetch.Source(M.DINOV2_FILE, (), f"sha256:{hashlib.sha256(raw).hexdigest()}")
    monkeypatch.setitem(fetch.sources(), "weights", (trusted,))
    assert M.dinov2_weights_path() == hub / M.DINOV2_FILE and (hub / M.DINOV2_FILE).read_bytes() == raw
    assert M.dinov2_weights_path() == hub / M.DINOV2_FILE and mirror.requests.count(f"/weights/{M.DINOV2_FILE}") == 2
