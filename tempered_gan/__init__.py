"""tempered-gan: Tempered Adversarial Networks (Sajjadi et al., ICML 2018) in PyTorch.

The lens for your own G and D::

    from tempered_gan import ImageLens, LambdaSchedule, Tempering
"""
from .errors import UserError
from .lens import ImageLens, LambdaSchedule, PointLens, make_lens, sine_lambda
from .losses import OBJECTIVES, Objective, gradient_penalty, reconstruction
from .tempering import Tempering, frozen

__all__ = ["ImageLens", "LambdaSchedule", "OBJECTIVES", "Objective", "PointLens", "Tempering", "UserError",
           "frozen", "gradient_penalty", "make_lens", "reconstruction", "sine_lambda"]
__version__ = "0.1.0"
