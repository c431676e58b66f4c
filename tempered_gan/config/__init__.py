"""A run's configuration (:mod:`.train_config`: every option, its default and its checks) and the
paper's named settings (:mod:`.presets`)."""
from tempered_gan.config.train_config import TrainConfig, resolve

__all__ = ["TrainConfig", "resolve"]
