"""tempered-gan: Tempered Adversarial Networks (Sajjadi et al., ICML 2018) in PyTorch.

The lens (or the baselines InstanceNoise, GaussianBlur) for your own G and D::

    from tempered_gan import ImageLens, LambdaSchedule, Tempering
"""
from tempered_gan.errors import UserError
from tempered_gan.method.lens import ImageLens, LambdaSchedule, PointLens, make_lens, sine_lambda
from tempered_gan.method.losses import OBJECTIVES, Objective, gradient_penalty, reconstruction
from tempered_gan.method.tempering import BaseTempering, GaussianBlur, InstanceNoise, Tempering, frozen, gaussian_blur

__all__ = ["BaseTempering", "GaussianBlur", "ImageLens", "InstanceNoise", "LambdaSchedule", "OBJECTIVES", "Objective",
           "PointLens", "Tempering", "UserError", "frozen", "gaussian_blur", "gradient_penalty", "make_lens",
           "reconstruction", "sine_lambda"]
__version__ = "0.2.0"
