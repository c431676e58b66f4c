"""The data: the registry of the data sets this project knows (:mod:`.registry`), their loaders
(:mod:`.loaders`: IDX, CIFAR, the 2-D mixtures, colour stacking) and folders of image files
(:mod:`.image_folder`)."""
from tempered_gan.data.loaders import Data, load_dataset
from tempered_gan.data.registry import DATASET_NAMES, DATASETS, dataset_kind

__all__ = ["DATASETS", "DATASET_NAMES", "Data", "dataset_kind", "load_dataset"]
