"""What D sees as real: the one place where real data are tempered before D.

Three kinds share one interface (:class:`BaseTempering`), and :class:`NoTempering`
(D sees X itself) completes it for plain training and for a run the tempering has left:

* :class:`Tempering`: the paper's learned lens L, trained by ``λ(t)·L_L^A + L_L^R``;
* :class:`InstanceNoise`: N(0, σ(t)²) added to *both* of D's inputs, real and generated
  (Sønderby et al. 2016; Arjovsky & Bottou 2017), σ(t) = σ₀·λ(t);
* :class:`GaussianBlur`: a fixed Gaussian blur of the real images of width σ(t) = σ₀·λ(t)
  pixels (the paper's conclusion: a lens carrying prior knowledge).

Our own trainer uses them too, so there is exactly one place where real data are
tempered. In your training loop::

    tempering = Tempering(ImageLens(channels=3), LambdaSchedule("sine", k=10_000), "gan")
    # or InstanceNoise(LambdaSchedule("sine", k=10_000), sigma=1.0), or GaussianBlur(..., sigma=2.0)
    for t, x in enumerate(loader, start=1):
        lam = tempering.schedule(t)
        real = tempering.real(x, lam=lam)        # L(X) / X + noise / blurred X, as data for D's step
        ... your D step on real and tempering.fake(G(z), lam=lam) ...
        ... your G step on D(tempering.fake(G(z), lam=lam)) ...
        tempering.step(D, t)                     # one lens update through D (nothing for the fixed kinds)

``step`` takes the lens's adversarial term exactly at the steps the schedule
tempers (``schedule.within(t)``: t ≤ K for the sine schedule), as our trainer does.

``real`` keeps the graph of L(X) so that the lens step reuses it instead of
running the lens forward a second time. ``fake`` is the identity except for
instance noise.
"""
from __future__ import annotations

import contextlib
import math
from typing import Callable, Iterator

import torch
from torch import Tensor, nn

from tempered_gan.method.lens import LambdaSchedule
from tempered_gan.method.losses import OBJECTIVES, reconstruction
from tempered_gan.method.nets import eval_mode


@contextlib.contextmanager
def frozen(module: nn.Module) -> Iterator[None]:
    """Let gradients flow *through* ``module`` while it stays exactly as it is.

    Its parameters take no gradients, and its buffers (batch-norm running
    statistics) are restored afterwards: a G or lens step leaves D untouched.
    """
    flags = [p.requires_grad for p in module.parameters()]
    # Buffers are swapped for copies rather than restored in place afterwards:
    # the autograd graph may hold the tensors the forward pass used.
    originals = [(m, name, b) for m in module.modules() for name, b in m._buffers.items() if b is not None]
    for m, name, b in originals:
        m._buffers[name] = b.clone()
    for p in module.parameters():
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(module.parameters(), flags):
            p.requires_grad_(flag)
        for m, name, b in originals:
            m._buffers[name] = b


class BaseTempering:
    """The interface every tempering shares; the fixed kinds (noise, blur) use its defaults.

    ``lam`` is λ(t), a number or a device scalar (a CUDA graph replays an
    iteration with λ in a tensor it refills): nothing here reads it on the host.

    Attributes: ``schedule`` (λ(t)); ``tempers`` (False only for :class:`NoTempering`);
    ``learns`` (whether :meth:`update` trains parameters); ``lens`` and ``optimizer``
    (None unless learned);
    ``generators`` (the random generators it draws from; a trainer saves and
    restores their states and registers them with CUDA graphs); ``label``
    (what D's real input is called in plots).
    """

    tempers = True
    learns = False
    lens: nn.Module | None = None
    optimizer: torch.optim.Optimizer | None = None
    label = "T(X)"

    def __init__(self, schedule: LambdaSchedule):
        self.schedule = schedule
        self._x: Tensor | None = None
        self._real: Tensor | None = None

    @property
    def generators(self) -> list[torch.Generator]:
        return []

    def real(self, x: Tensor, keep_graph: bool = True, *, lam: float | Tensor | None = None) -> Tensor:
        """D's real input at λ = ``lam``, as data (no gradient). With
        ``keep_graph`` the batch is kept for the next :meth:`update`."""
        raise NotImplementedError

    def fake(self, x: Tensor, lam: float | Tensor | None = None) -> Tensor:
        """D's generated input: G(Z) itself, unless the kind tempers both inputs.
        Gradients flow through it to G."""
        return x

    def step(self, discriminator: nn.Module, t: int) -> dict[str, float | Tensor | None]:
        """One update at step ``t``: :meth:`update` with λ(t), the adversarial term
        taken while the schedule tempers (t ≤ K; after K, ‖X − L(X)‖² alone and no pass of D)."""
        return self.update(discriminator, self.schedule(t), adversarial=self.schedule.within(t))

    def update(self, discriminator: nn.Module, lam: float | Tensor,
               adversarial: bool = True) -> dict[str, float | Tensor | None]:
        """Fixed kinds train nothing: this only reports ‖X − T(X)‖² (mean) on the
        last real batch, how far D's real input is from X (logged as loss_lens_rec)."""
        if self._real is None:
            raise RuntimeError(f"call {type(self).__name__}.real(x, lam=...) before step(D, t)")
        rec = reconstruction(self._x, self._real)
        self._x = self._real = None
        return {"lambda": lam, "loss_lens_adv": None, "loss_lens_rec": rec.detach()}

    def blend(self, x: Tensor, alpha: float | Tensor) -> Tensor:
        """D's real input while the tempering fades out after K (the ``blend`` exit):
        ``x + α·(T(x) − x)``, α falling from 1 to 0, nothing trained. Only the learned
        lens fades; the fixed kinds end at K."""
        raise NotImplementedError(f"{type(self).__name__} ends at K; only the learned lens fades out")

    def preview(self, x: Tensor, lam: float | Tensor, alpha: float = 1.0,
                generator: torch.Generator | None = None) -> Tensor:
        """What D sees as real at λ (and, for the lens, α of its blend exit),
        changing no state of the run (sample grids). Random kinds draw from
        ``generator``, never from their own stream."""
        raise NotImplementedError

    def _keep(self, x: Tensor, real: Tensor, keep_graph: bool) -> Tensor:
        if keep_graph:
            self._x, self._real = x, real
        return real

    # --- checkpoints --------------------------------------------------------
    def state_dict(self) -> dict:
        """Everything a resumed loop needs: the lens and its optimiser (when learned) and the
        states of its random generators. The schedule and the options are the constructor's:
        build the same tempering, then :meth:`load_state_dict`."""
        return {"kind": type(self).__name__,
                "lens": self.lens.state_dict() if self.lens is not None else None,
                "optimizer": self.optimizer.state_dict() if self.optimizer is not None else None,
                "generators": [g.get_state() for g in self.generators]}

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict`'s output into a tempering built as the saved one was."""
        if state.get("kind") != type(self).__name__:
            raise ValueError(f"a {state.get('kind')} state does not fit a {type(self).__name__}")
        if (state["lens"] is None) != (self.lens is None) or len(state["generators"]) != len(self.generators):
            raise ValueError(f"the saved {state['kind']} was built with other parts (lens, optimiser, generators)")
        if self.lens is not None:
            self.lens.load_state_dict(state["lens"])
        if self.optimizer is not None:
            self.optimizer.load_state_dict(state["optimizer"])
        for generator, saved in zip(self.generators, state["generators"]):
            generator.set_state(saved)

    def to(self, device: torch.device | str) -> "BaseTempering":
        """Move the lens and its optimiser's state to ``device``; returns self. A random
        generator stays where it was made (a generator's state cannot change device): the
        noise is drawn there and moved to the data."""
        if self.lens is not None:
            self.lens.to(device)
        if self.optimizer is not None:
            steps_stay = not _on_device(self.optimizer)      # eager Adam keeps its step counts on the CPU
            for per_param in self.optimizer.state.values():
                for key, value in per_param.items():
                    if torch.is_tensor(value) and not (key == "step" and steps_stay):
                        per_param[key] = value.to(device)
        return self


class NoTempering(BaseTempering):
    """No tempering: D sees X and G(Z) themselves. A run without one has it from the
    start; a run whose tempering has left has it from then on."""

    tempers = False
    label = "X"

    def __init__(self):
        super().__init__(schedule=None)

    def real(self, x: Tensor, keep_graph: bool = True, *, lam: float | Tensor | None = None) -> Tensor:
        return x

    def update(self, discriminator: nn.Module, lam: float | Tensor,
               adversarial: bool = True) -> dict[str, float | Tensor | None]:
        return {"lambda": None, "loss_lens_adv": None, "loss_lens_rec": None}

    def preview(self, x: Tensor, lam: float | Tensor | None = None, alpha: float = 1.0,
                generator: torch.Generator | None = None) -> Tensor:
        return x


def _on_device(optimizer: torch.optim.Optimizer) -> bool:
    """Whether the optimiser keeps its step counts on the parameters' device (capturable or fused)."""
    return any(group.get("capturable") or group.get("fused") for group in optimizer.param_groups)


class Tempering(BaseTempering):
    """The learned lens: L, its optimiser and its loss ``λ(t)·L_L^A + L_L^R``.

    Args:
        lens: a module mapping a batch of real data to the same space.
        schedule: λ(t), e.g. ``LambdaSchedule("sine", k=10_000)``.
        objective: ``"gan"``, ``"lsgan"``, ``"wgan-gp"`` or a function of D's
            outputs on L(X) giving the lens's adversarial loss L_L^A.
        optimizer: defaults to Adam(lr=1e-4, betas=(0.5, 0.999)).
        reduction: ``"mean"`` (default) or ``"sum"`` for ‖X − L(X)‖².
        before_update: called with the lens between its backward pass and its
            optimiser step (our trainer averages gradients across processes there).
        autocast: a context-manager factory for the forward passes (mixed precision).
    """

    learns = True
    label = "L(X)"

    def __init__(self, lens: nn.Module, schedule: LambdaSchedule,
                 objective: str | Callable[[Tensor], Tensor] = "gan",
                 optimizer: torch.optim.Optimizer | None = None, reduction: str = "mean",
                 before_update: Callable[[nn.Module], None] | None = None,
                 autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext):
        super().__init__(schedule)
        self.lens = lens
        self.adversarial = OBJECTIVES[objective].lens_loss if isinstance(objective, str) else objective
        self.optimizer = optimizer or torch.optim.Adam(lens.parameters(), lr=1e-4, betas=(0.5, 0.999))
        self.reduction = reduction
        self.before_update = before_update
        self.autocast = autocast

    def real(self, x: Tensor, keep_graph: bool = True, *, lam: float | Tensor | None = None) -> Tensor:
        """L(x), detached: D's step treats it as data (``lam`` is not needed).

        With ``keep_graph`` the graph of L(x) is kept for the next :meth:`step`
        (the lens updates on the last batch that D saw).
        """
        if not keep_graph:
            with torch.no_grad(), self.autocast():
                return self.lens(x).to(x.dtype)
        with self.autocast():
            self._x, self._real = x, self.lens(x).to(x.dtype)
        return self._real.detach()

    def update(self, discriminator: nn.Module, lam: float | Tensor,
               adversarial: bool = True) -> dict[str, float | Tensor | None]:
        """One lens update of ``λ·L_L^A + L_L^R`` with ``lam`` = λ(t); only L's
        parameters change, gradients flow through D. ``adversarial=False``:
        ``L_L^R`` alone (λ = 0), no pass of D; the adversarial loss is then
        returned as None."""
        if self._real is None:
            raise RuntimeError("call Tempering.real(x) before Tempering.step(D, t)")
        rec = reconstruction(self._x, self._real, self.reduction)
        loss, adv = rec, None
        if adversarial:
            with frozen(discriminator), self.autocast():
                adv = self.adversarial(discriminator(self._real).float())
            loss = lam * adv + rec
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.before_update:
            self.before_update(self.lens)
        self.optimizer.step()
        self._x = self._real = None
        return {"lambda": lam, "loss_lens_adv": adv.detach() if adv is not None else None,
                "loss_lens_rec": rec.detach()}

    @torch.no_grad()
    def blend(self, x: Tensor, alpha: float | Tensor) -> Tensor:
        """``L_α(x) = x + α·(L(x) − x)``: the lens faded towards the identity
        (α = 1: L itself; α = 0: x). The ``blend`` exit shows D this while α
        falls from 1 to 0 after K; the lens no longer trains."""
        with self.autocast():
            lensed = self.lens(x).to(x.dtype)
        return x + alpha * (lensed - x)

    @torch.no_grad()
    def preview(self, x: Tensor, lam: float | Tensor = 1.0, alpha: float = 1.0,
                generator: torch.Generator | None = None) -> Tensor:
        """L_α(x) with the lens in eval mode (batch-norm running statistics)."""
        with eval_mode(self.lens):
            lensed = self.lens(x)
        return lensed if alpha == 1.0 else x + alpha * (lensed - x)


def check_sigma(sigma, name: str = "σ₀") -> float:
    """σ₀ of a fixed tempering as a float: a finite number ≥ 0 (the one check, for the
    command line and the library alike); ValueError, naming it ``name``, otherwise."""
    if isinstance(sigma, bool) or not isinstance(sigma, (int, float)) or not math.isfinite(sigma) or sigma < 0:
        raise ValueError(f"{name} must be a finite number ≥ 0, got {sigma!r}")
    return float(sigma)


class _FixedTempering(BaseTempering):
    """A parameter-free tempering of width σ(t) = σ₀·λ(t): nothing to train, and
    nothing left to do once λ = 0."""

    def __init__(self, schedule: LambdaSchedule, sigma: float):
        super().__init__(schedule)
        self.sigma0 = check_sigma(sigma)

    def sigma(self, t: int) -> float:
        """σ(t) = σ₀·λ(t)."""
        return self.sigma0 * self.schedule(t)

    def _width(self, lam: float | Tensor | None) -> float | Tensor:
        if lam is None:
            raise TypeError(f"{type(self).__name__} needs lam=λ(t), e.g. lam=tempering.schedule(t)")
        return self.sigma0 * lam


class InstanceNoise(_FixedTempering):
    """Annealed instance noise: D sees X + σ(t)·ε and G(Z) + σ(t)·ε′, ε, ε′ ~ N(0, I),
    σ(t) = σ₀·λ(t), fresh noise at every evaluation of D (D's and G's steps alike).

    Args:
        schedule: λ(t).
        sigma: σ₀, in the data's own units (images in [-1, 1]: 1.0 is half the range).
        generator: where the noise comes from (default: PyTorch's global generator);
            on the data's device.
    """

    label = "X + N(0, σ²)"

    def __init__(self, schedule: LambdaSchedule, sigma: float = 1.0, generator: torch.Generator | None = None):
        super().__init__(schedule, sigma)
        self.generator = generator

    @property
    def generators(self) -> list[torch.Generator]:
        return [self.generator] if self.generator is not None else []

    def _noisy(self, x: Tensor, lam: float | Tensor | None, generator: torch.Generator | None) -> Tensor:
        sigma = self._width(lam)
        device = generator.device if generator is not None else x.device
        noise = torch.randn(x.shape, generator=generator, device=device, dtype=x.dtype)
        return x + sigma * noise.to(x.device)

    def real(self, x: Tensor, keep_graph: bool = True, *, lam: float | Tensor | None = None) -> Tensor:
        """X + σ·ε, as data."""
        with torch.no_grad():
            return self._keep(x, self._noisy(x, lam, self.generator), keep_graph)

    def fake(self, x: Tensor, lam: float | Tensor | None = None) -> Tensor:
        """G(Z) + σ·ε′; gradients flow through to G."""
        return self._noisy(x, lam, self.generator)

    @torch.no_grad()
    def preview(self, x: Tensor, lam: float | Tensor, alpha: float = 1.0,
                generator: torch.Generator | None = None) -> Tensor:
        return self._noisy(x, lam, generator)


class GaussianBlur(_FixedTempering):
    """A blurring lens without parameters: D sees the real images blurred by a
    Gaussian of σ(t) = σ₀·λ(t) pixels (:func:`gaussian_blur`); G(Z) is left as it is,
    unless ``both``: then G(Z) is blurred alike, in D's step and in G's (gradients flow
    through the blur to G), as StyleGAN3 blurs both of D's inputs (``training/loss.py``,
    ``run_D``; with a linear schedule, its fade).

    Args:
        schedule: λ(t).
        sigma: σ₀ in pixels; the kernel is cut at radius ⌈3σ₀⌉ for every t.
        both: blur G(Z) too.
    """

    label = "blurred X"

    def __init__(self, schedule: LambdaSchedule, sigma: float = 2.0, both: bool = False):
        super().__init__(schedule, sigma)
        self.radius = math.ceil(3 * self.sigma0)
        self.both = both

    def fake(self, x: Tensor, lam: float | Tensor | None = None) -> Tensor:
        """G(Z), blurred like X when ``both`` (differentiably); else as it is."""
        return gaussian_blur(x, self._width(lam), self.radius) if self.both else x

    def real(self, x: Tensor, keep_graph: bool = True, *, lam: float | Tensor | None = None) -> Tensor:
        """X blurred by σ·λ pixels, as data."""
        with torch.no_grad():
            return self._keep(x, gaussian_blur(x, self._width(lam), self.radius), keep_graph)

    @torch.no_grad()
    def preview(self, x: Tensor, lam: float | Tensor, alpha: float = 1.0,
                generator: torch.Generator | None = None) -> Tensor:
        return gaussian_blur(x, self._width(lam), self.radius)


def gaussian_blur(x: Tensor, sigma: float | Tensor, radius: int) -> Tensor:
    """Blur images ``x`` (..., H, W) by a Gaussian of ``sigma`` pixels, separably.

    The taps ``exp(−j²/2σ²)``, j = −radius … radius, are normalised to sum 1
    and built with tensor ops, so ``sigma`` may be a device scalar that is never
    read on the host (CUDA graphs). At σ = 0 they are exactly (0, …, 1, …, 0) and
    the blur returns ``x`` exactly. Edges are extended by half-sample symmetric
    reflection (d c b a | a b c d | d c b a; numpy's "symmetric", scipy.ndimage's
    "reflect"): with it each 1-D blur is a symmetric matrix whose rows sum to 1,
    so its columns do too and every image's mean is preserved exactly. (PyTorch's
    "reflect" and "replicate" paddings do not preserve the mean.)
    """
    if x.dim() < 3:
        raise ValueError(f"gaussian_blur needs images (..., H, W); got shape {tuple(x.shape)}")
    if radius <= 0:
        return x
    offsets = torch.arange(-radius, radius + 1, device=x.device, dtype=torch.float32)
    sigma = torch.as_tensor(sigma, dtype=torch.float32, device=x.device)
    taps = torch.exp(-offsets.square() / (2 * sigma.square()).clamp_min(1e-12))   # σ = 0: exp(−∞) = 0 off centre
    taps = (taps / taps.sum()).to(x.dtype)
    return _blur_axis(_blur_axis(x, taps, radius, x.dim() - 1), taps, radius, x.dim() - 2)


def _blur_axis(x: Tensor, taps: Tensor, radius: int, dim: int) -> Tensor:
    """Σⱼ taps[j]·x shifted by j − radius along ``dim``, symmetric edges (any radius)."""
    n = x.shape[dim]
    position = torch.arange(-radius, n + radius, device=x.device) % (2 * n)
    index = torch.where(position < n, position, 2 * n - 1 - position)   # period 2n: x, then x reversed
    padded = x.index_select(dim, index)
    out = taps[0] * padded.narrow(dim, 0, n)
    for j in range(1, 2 * radius + 1):
        out = out + taps[j] * padded.narrow(dim, j, n)
    return out
