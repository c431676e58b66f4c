import pytest


@pytest.fixture(autouse=True, scope="session")
def private_cache(tmp_path_factory):
    """Caches (classifier features, real statistics, decoded images) go to a
    temporary folder, never the user's ~/.cache."""
    import os
    previous = os.environ.get("TEMPERED_GAN_CACHE")
    os.environ["TEMPERED_GAN_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    yield
    if previous is None:
        os.environ.pop("TEMPERED_GAN_CACHE", None)
    else:
        os.environ["TEMPERED_GAN_CACHE"] = previous


@pytest.fixture(autouse=True, scope="session")
def offline():
    """Nothing is fetched unless a test serves the files itself (tests/util/test_fetch.py, from 127.0.0.1): a test
    that expects a "missing files" error gets it at once, a run can never reach the internet (CI has none) or a
    developer's own mirror, and the processes tests start inherit the setting."""
    import os
    previous = {k: os.environ.pop(k, None) for k in ("TEMPERED_GAN_OFFLINE", "TEMPERED_GAN_MIRROR")}
    os.environ["TEMPERED_GAN_OFFLINE"] = "1"
    yield
    for key, value in previous.items():
        os.environ.pop(key, None)
        if value is not None:
            os.environ[key] = value


@pytest.fixture(autouse=True, scope="session")
def one_thread():
    """The tests' networks are tiny: several threads gain nothing and, on a shared CI machine whose cores
    are busy, spin-waiting threads made single steps 100x slower (measured: 17 s against 0.14 s)."""
    import torch
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def ring():
    """The 2-D ring of 8 Gaussians (generated, read-only)."""
    from tempered_gan.data.loaders import load_dataset
    return load_dataset("mixture-ring8")


@pytest.fixture()
def mnist_dir(tmp_path):
    """A folder with a small MNIST written in the idx format (40 images)."""
    from helpers import write_mnist
    return write_mnist(tmp_path / "mnist", n=40)
