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
