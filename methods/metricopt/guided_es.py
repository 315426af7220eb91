"""Guided evolution strategies (Maheswaranathan et al., ICML 2019): antithetic perturbations drawn from a
distribution stretched along a few guiding directions (for MetricOpt: the surrogate-loss gradient and
the value function's gradient), so that the same number of metric queries estimates the gradient far
better when the guides are informative, and no worse than plain ES by much when they are not.

    Sigma = (alpha / n) * I + ((1 - alpha) / k) * U U^T       U: orthonormal basis of the k guides
    eps_i ~ N(0, sigma^2 Sigma)
    g = beta / (2 sigma^2 P) * sum_i eps_i * (f(phi + eps_i) - f(phi - eps_i))

The defaults of the paper's reference code: sigma 0.1, alpha 0.5, beta 2, a few antithetic pairs.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch


def orthonormal_basis(guides: torch.Tensor) -> torch.Tensor:
    """n x k' orthonormal basis of the span of the rows of `guides` (k x n); zero rows are dropped."""
    guides = guides[guides.norm(dim=1) > 0]
    if len(guides) == 0:
        return guides.new_zeros(guides.shape[1], 0)
    q, r = torch.linalg.qr(guides.T)
    keep = r.diagonal().abs() > 1e-10 * r.diagonal().abs().max()  # drop directions already spanned
    return q[:, keep]


def guided_perturbations(
    n: int, basis: torch.Tensor, pairs: int, sigma: float, alpha: float, generator: torch.Generator
) -> torch.Tensor:
    """`pairs` x n draws of N(0, sigma^2 Sigma). Random numbers come from `generator` on the CPU (the same
    on any device); alpha = 1 (or no guide) is plain ES with covariance sigma^2 / n * I."""
    k = basis.shape[1]
    full = torch.randn(pairs, n, generator=generator)
    if k == 0:
        return sigma * full / math.sqrt(n)
    guided = torch.randn(pairs, k, generator=generator)
    basis = basis.float().cpu()
    return sigma * (math.sqrt(alpha / n) * full + math.sqrt((1 - alpha) / k) * guided @ basis.T)


def guided_es_gradient(
    evaluate: Callable[[torch.Tensor], torch.Tensor],
    phi: torch.Tensor,
    guides: torch.Tensor,
    pairs: int,
    generator: torch.Generator,
    sigma: float = 0.1,
    alpha: float = 0.5,
    beta: float = 2.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(gradient estimate of f at `phi`, the 2P candidates, their values). `evaluate` maps k x n
    candidates to k values to be minimised, in one call (+eps_1..+eps_P, then -eps_1..-eps_P);
    `guides` is k x n (or None: plain ES)."""
    basis = (
        orthonormal_basis(guides.detach().float().cpu()) if guides is not None and len(guides) else phi.new_zeros(phi.numel(), 0)
    )
    eps = guided_perturbations(phi.numel(), basis, pairs, sigma, alpha, generator).to(phi.device, phi.dtype)
    candidates = torch.cat([phi + eps, phi - eps])
    values = evaluate(candidates).to(phi.device, phi.dtype)
    gradient = beta / (2 * sigma**2 * pairs) * ((values[:pairs] - values[pairs:]) @ eps)
    return gradient, candidates, values
