"""What FID measures distances between: feature extractors, the Inception weights,
and the cache keys of the features of real data.

* ``inception``: the standard pt_inception-2015-12-05 weights (as in
  torch-fidelity / TTUR), fetched into torch hub's cache on first use; paper-comparable.
* ``dinov2``: the CLS token of DINOv2 ViT-S/14 (Oquab et al. 2023), as Stein et
  al. 2023 recommend in place of Inception; Meta's weights, fetched the same way.
* ``points``: the raw 2-D coordinates (FID is then the Fréchet distance of two
  Gaussians fitted to the points).
* ``classifier``: a small CNN trained on the data set's own labels
  (:mod:`tempered_gan.metrics.classifier`).

Caches (``<cache_dir>/metrics``, default ``~/.cache/tempered-gan/metrics``) are
written atomically and keyed by hashes of the exact data used, so a changed
data set rebuilds them; see docs/METRICS.md.
"""
from __future__ import annotations

import hashlib
import math
import os
from pathlib import Path

import torch
from torch import nn

from tempered_gan.data.loaders import Data, default_cache_dir
from tempered_gan.errors import UserError
from tempered_gan.util.fetch import DINOV2_URL, fetch_weights

INCEPTION_FILE = "pt_inception-2015-12-05-6726825d.pth"
# torch-fidelity publishes the same file (same hash suffix) under this name; accept either in the hub cache.
INCEPTION_FILE_FIDELITY = "weights-inception-2015-12-05-6726825d.pth"
DINOV2_FILE = DINOV2_URL.rsplit("/", 1)[1]   # dinov2_vits14_pretrain.pth, as torch hub names it
CHUNK = 256   # samples per forward pass of an extractor


CLASSIFIER_INSTEAD = "or use --fid-features classifier, which works offline"   # what a missing Inception file suggests

class FeatureExtractor(nn.Module):
    """Maps samples as the data set yields them (images in [-1, 1], or points) to ``(B, num_features)``.

    ``key`` identifies the extractor and its weights (it is part of every cache key);
    ``description`` is the human-readable line reported with each score.
    """

    num_features: int
    key: str
    description: str


def image_file_pixels(x: torch.Tensor) -> torch.Tensor:
    """Images in [-1, 1] as an image file holds them, RGB: uint8, grey repeated to three channels."""
    pixels = x.clamp(-1, 1).add(1).mul(127.5).round().to(torch.uint8)
    return pixels.expand(-1, 3, -1, -1) if pixels.shape[1] == 1 else pixels


class IdentityFeatures(FeatureExtractor):
    """The samples themselves as features: for 2-D points (``dim=2``), or any flat vectors."""

    def __init__(self, dim: int = 2, description: str | None = None):
        super().__init__()
        self.num_features = dim
        self.key = f"identity-{dim}"
        self.description = description or f"raw {dim}-d coordinates (Fréchet distance of fitted Gaussians)"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(len(x), -1).float()


class InceptionFeatures(FeatureExtractor):
    """2048-d pool3 features of the FID Inception network (torchmetrics' ``NoTrainInceptionV3``).

    Images in [-1, 1] are quantised to uint8 as an image file would be, grey
    images are repeated to RGB, and the resize to 299 x 299 uses TensorFlow 1's
    bilinear rule (``antialias=False``), as TTUR / torch-fidelity do, so scores
    match the usual (paper) FID protocol.
    """

    def __init__(self, weights: Path, digest: str):
        super().__init__()
        from torchmetrics.image.fid import NoTrainInceptionV3

        self.net = NoTrainInceptionV3(name="inception-v3-compat", features_list=["2048"],
                                      feature_extractor_weights_path=str(weights), antialias=False)
        self.num_features = 2048
        self.key = f"inception-2015-12-05-pool3-tf1resize:{digest}"
        self.description = f"Inception pool3, 2048-d ({weights.name}); comparable with published FIDs at the same sample size"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pixels = image_file_pixels(x)
        return self.net(pixels)

    def logits(self, features: torch.Tensor) -> torch.Tensor:
        """The 1008 class logits of pool3 ``features``, without the bias: the ``logits_unbiased`` that
        torch-fidelity's Inception Score reads, from the same pass as FID's features."""
        weight = self.net.fc.weight
        return features.to(weight.device, weight.dtype) @ weight.T


class DinoV2Features(FeatureExtractor):
    """384-d CLS-token features of DINOv2 ViT-S/14 (Oquab et al. 2023), the Fréchet distance Stein et al.
    2023 recommend in place of Inception's.

    The images pass through torch-fidelity's ``dinov2-vit-s-14`` extractor (pixels
    quantised to uint8, grey repeated to RGB, TensorFlow 1's bilinear resize to
    224 × 224, ImageNet normalisation), as in its FID. Its network is timm's
    DINOv2 ViT-S/14 with Meta's weights loaded strictly, the position embedding
    resampled once from 37 × 37 to 16 × 16 as Meta's model does at 224 px
    (bicubic, scale (16 + 0.1)/37, no antialiasing): torch-fidelity would fetch
    the model's code from GitHub's latest revision at run time, which cannot be
    pinned by a checksum (docs/DECISIONS.md, "DINOv2 features").
    """

    def __init__(self, weights: Path):
        super().__init__()
        state = _load_state(weights, "DINOv2 ViT-S/14")
        shapes = {k: tuple(v.shape) for k, v in state.items()}
        if shapes.get("pos_embed") != (1, 1370, 384) or shapes.get("blocks.11.attn.qkv.weight") != (1152, 384):
            raise UserError(f"{weights} is not the DINOv2 ViT-S/14 weights ({DINOV2_FILE})")
        model = _dinov2_vits14(state)
        if model is None:
            raise UserError(f"{weights} is not the DINOv2 ViT-S/14 weights ({DINOV2_FILE}): other keys or shapes")
        self.net = _fidelity_dinov2(model)
        self.num_features = 384
        self.key = f"dinov2-vits14-cls-tf1resize224:{hashlib.sha256(weights.read_bytes()).hexdigest()[:16]}"
        self.description = (f"DINOv2 ViT-S/14 CLS token, 384-d ({weights.name}); comparable with torch-fidelity's "
                            "dinov2-vit-s-14 FID at the same sample size, not with Inception FID")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pixels = image_file_pixels(x)
        (features,) = self.net(pixels)
        return features


def dinov2_features(explicit: str | None = None, instead: str = "or use --fid-features inception") -> DinoV2Features:
    """The DINOv2 extractor of the weights file :func:`dinov2_weights_path` finds (``instead``: the alternative
    its error names)."""
    return DinoV2Features(dinov2_weights_path(explicit, instead))


def dinov2_weights_path(explicit: str | None = None, instead: str = "or use --fid-features inception") -> Path:
    """Where the DINOv2 ViT-S/14 weights are: ``explicit``, else ``$TEMPERED_GAN_DINOV2``, else torch hub's cache
    (where ``torch.hub.load("facebookresearch/dinov2", "dinov2_vits14")`` keeps the same file); see
    :func:`weights_path`."""
    return weights_path("DINOv2 weights", (DINOV2_FILE,), explicit, "TEMPERED_GAN_DINOV2", "--dinov2-weights", instead)


def _dinov2_vits14(state: dict) -> nn.Module | None:
    """timm's DINOv2 ViT-S/14 at 224 × 224 with Meta's weights ``state``: the CLS token after the last norm, as
    Meta's model returns it. None when ``state`` has other keys or shapes (another DINOv2, one with registers)."""
    try:
        import timm
    except ImportError:
        raise UserError("--fid-features dinov2 needs timm: pip install 'tempered-gan[dinov2]'") from None
    state = dict(state)
    state.pop("mask_token", None)                      # used in DINOv2's training only
    cls_pos, grid = state["pos_embed"][:, :1], state["pos_embed"][:, 1:]
    side, dim = math.isqrt(grid.shape[1]), grid.shape[2]
    grid = grid.float().reshape(1, side, side, dim).permute(0, 3, 1, 2)
    grid = nn.functional.interpolate(grid, scale_factor=((224 // 14 + 0.1) / side,) * 2, mode="bicubic",
                                     antialias=False)
    state["pos_embed"] = torch.cat([cls_pos, grid.permute(0, 2, 3, 1).reshape(1, -1, dim)], dim=1)
    model = timm.create_model("vit_small_patch14_dinov2", pretrained=False, img_size=224, num_classes=0)
    if {k: v.shape for k, v in state.items()} != {k: v.shape for k, v in model.state_dict().items()}:
        return None
    model.load_state_dict(state, strict=True)
    return model


def _fidelity_dinov2(model: nn.Module) -> nn.Module:
    """torch-fidelity's ``dinov2-vit-s-14`` extractor (its resize and normalisation) around ``model``, in place of
    the one its constructor would fetch with ``torch.hub.load``."""
    from torch_fidelity.feature_extractor_base import FeatureExtractorBase
    from torch_fidelity.feature_extractor_dinov2 import FeatureExtractorDinoV2

    extractor = FeatureExtractorDinoV2.__new__(FeatureExtractorDinoV2)
    FeatureExtractorBase.__init__(extractor, "dinov2-vit-s-14", ["dinov2"])
    extractor.feature_extractor_internal_dtype = torch.float32
    extractor.model = model
    return extractor.requires_grad_(False).eval()


def _load_state(path: Path, what: str) -> dict:
    """The plain tensors of a weights file (``weights_only``: a file that would run code is refused), or one line."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a corrupt or foreign file
        raise UserError(f"{path} is not a readable {what} state dict ({type(exc).__name__}: {exc})") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UserError(f"{path} is not a {what} state dict")
    return state


def inception_features(explicit: str | None = None, instead: str = CLASSIFIER_INSTEAD) -> InceptionFeatures:
    """The Inception extractor of the weights file :func:`inception_weights_path` finds
    (``instead``: the alternative its error names)."""
    path = inception_weights_path(explicit, instead)
    return InceptionFeatures(path, _check_inception_file(path))


def inception_weights_path(explicit: str | None = None, instead: str = CLASSIFIER_INSTEAD) -> Path:
    """Where the Inception weights are: ``explicit``, else ``$TEMPERED_GAN_INCEPTION``, else the torch hub cache
    (where torch-fidelity's copy of the same file counts too); see :func:`weights_path`."""
    return weights_path("Inception FID weights", (INCEPTION_FILE, INCEPTION_FILE_FIDELITY), explicit,
                        "TEMPERED_GAN_INCEPTION", "--inception-weights", instead)


def weights_path(what: str, names: tuple[str, ...], explicit: str | None, env: str, flag: str, instead: str) -> Path:
    """Where a feature extractor's weights file is: ``explicit``, else ``$env``, else torch hub's cache
    (``<hub>/checkpoints/<name>`` for each of ``names``).

    Where neither is given and the cache lacks the file, ``names[0]`` is fetched
    there (``fetch.fetch_weights``); else a one-line UserError names the missing
    file, the places looked in and where the file goes (``instead``: the
    alternative it names).
    """
    hub = Path(torch.hub.get_dir()) / "checkpoints"   # where torchmetrics, torch-fidelity and torch hub keep theirs
    if explicit:
        candidates = [Path(explicit).expanduser()]
    elif os.environ.get(env):
        candidates = [Path(os.environ[env]).expanduser()]
    else:
        candidates = [hub / name for name in names]
    for path in candidates:
        if path.is_file():
            return path
    if candidates[0] == hub / names[0] and fetch_weights(names[0], hub, what):
        return hub / names[0]
    raise UserError(f"{what} {names[0]} not found (looked at: {', '.join(map(str, candidates))}); "
                    f"put the file at {hub / names[0]}, set {env} or pass {flag} PATH "
                    f"(nothing is downloaded for a given path or with TEMPERED_GAN_OFFLINE=1); {instead}")


def _check_inception_file(path: Path) -> str:
    """sha256 of the weights file, after checking it loads as plain tensors.

    torchmetrics loads the file with ``weights_only=False`` (arbitrary pickle);
    loading it here first with ``weights_only=True`` refuses a file that would run code.
    """
    if "Mixed_7c.branch_pool.conv.weight" not in _load_state(path, "Inception"):
        raise UserError(f"{path} is not the FID Inception weights ({INCEPTION_FILE})")
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


# --- cache keys ---------------------------------------------------------------------

def metrics_dir(cache_dir: str | None) -> Path:
    return Path(cache_dir or default_cache_dir()).expanduser() / "metrics"


def data_fingerprint(data: Data, idx: torch.Tensor) -> str:
    """sha256 of the samples ``data[idx]`` (uint8 pixels for images) and their labels."""
    h = hashlib.sha256(f"{data.name}\0{data.kind}\0{data.shape}\0{len(idx)}".encode())
    for chunk in idx.split(4096):
        x = data.batch(chunk)
        if data.kind == "image":  # stored as uint8, so this round trip is exact and hashes 4x fewer bytes
            x = x.add(1).mul(127.5).round().to(torch.uint8)
        h.update(x.contiguous().numpy().tobytes())
    if data.labels is not None:
        h.update(data.labels[idx].contiguous().numpy().tobytes())
    return h.hexdigest()
