"""The data sets this project knows, and what kind each is: the one registry that the
configuration, the data loaders, the metrics and a run's summary read.

For each data set: whether it is 2-D points or images, whether it has class labels
(classifier FID features, classes as modes), what its modes are (a mixture's
components, the 1000 colour combinations of a stacked set, the 10 classes, or
none), whether it has a test split, and the grey set a colour variant is stacked from.
"""
from __future__ import annotations

from dataclasses import dataclass

IMAGE_SIDES = (32, 64, 128)   # --resolution: the paper's 32, and the sides the conv nets grow to


@dataclass(frozen=True)
class DatasetKind:
    name: str
    points: bool = False              # 2-D points (else images)
    labels: bool = True               # class labels: classifier features, class modes
    modes: str | None = "classes"     # mixture | stacked | classes | None: what coverage counts
    test_split: bool = True
    base: str | None = None           # the grey set a colour variant is stacked from (its files)
    sizes: tuple[int, ...] = (32,)    # the image sides it can be loaded at (--resolution)
    image_files: bool = False         # decoded from image files (tempered_gan.data.image_folder; --skip-unreadable)

    @property
    def kind(self) -> str:
        """``points`` or ``image``, as :class:`~tempered_gan.data.Data` names it."""
        return "points" if self.points else "image"

    def size_problem(self, resolution: int) -> str | None:
        """Why it cannot be loaded at ``resolution`` × ``resolution`` (None: it can)."""
        if resolution in self.sizes:
            return None
        larger = ", ".join(n for n, d in DATASETS.items() if len(d.sizes) > 1)
        return f"{self.name} exists only at {', '.join(f'{s}×{s}' for s in self.sizes)} (larger sizes: {larger})"

    @property
    def files(self) -> str:
        """The data set whose files it reads (a colour variant reads its grey set's)."""
        return self.base or self.name


DATASETS = {d.name: d for d in (
    DatasetKind("mnist"),
    DatasetKind("fashion-mnist"),
    DatasetKind("color-mnist", modes="stacked", base="mnist"),
    DatasetKind("color-fashion-mnist", modes="stacked", base="fashion-mnist"),
    DatasetKind("cifar10", modes=None),   # labelled, but its classes are not modes a GAN collapses to
    DatasetKind("celeba", labels=False, modes=None, test_split=False, sizes=IMAGE_SIDES, image_files=True),
    # A folder has labels (and classes as modes, and a test split) when laid out by class:
    # tempered_gan.data.image_folder.class_names. Here: what it has without that layout.
    DatasetKind("folder", labels=False, modes=None, test_split=False, sizes=IMAGE_SIDES, image_files=True),
    DatasetKind("mixture-ring8", points=True, labels=False, modes="mixture"),
    DatasetKind("mixture-grid25", points=True, labels=False, modes="mixture"),
)}
DATASET_NAMES = tuple(DATASETS)
POINT_DATASETS = tuple(n for n, d in DATASETS.items() if d.points)
IMAGE_DATASETS = tuple(n for n, d in DATASETS.items() if not d.points)


def dataset_kind(name: str) -> DatasetKind:
    """The registry's entry for ``name``; KeyError for a name it does not know
    (the configuration refuses those in one line before anything asks)."""
    return DATASETS[name]
