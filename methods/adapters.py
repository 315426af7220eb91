"""FiLM adapters (Perez et al. 2018): a per-channel scale and shift after each normalisation layer.

`attach_film_adapters(model)` works on any model without the model knowing: forward hooks apply
`y * scale + shift` to the outputs of BatchNorm / LayerNorm / GroupNorm layers. Scales start at 1
and shifts at 0, so the model computes exactly what it did before.
"""

from __future__ import annotations

import torch
from torch import nn

NORM_LAYERS = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm)


def _channels(module: nn.Module) -> int:
    if isinstance(module, nn.LayerNorm):
        return module.normalized_shape[-1]
    if isinstance(module, nn.GroupNorm):
        return module.num_channels
    return module.num_features


class FiLM(nn.Module):
    def __init__(self, channels: int, channel_dim: int):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(channels))
        self.shift = nn.Parameter(torch.zeros(channels))
        self.channel_dim = channel_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = [1] * x.ndim
        shape[self.channel_dim if self.channel_dim >= 0 else x.ndim + self.channel_dim] = -1
        return x * self.scale.view(shape) + self.shift.view(shape)


def attach_film_adapters(model: nn.Module) -> list[nn.Parameter]:
    """Attach a FiLM adapter after every normalisation layer; return the adapter parameters (phi)."""
    adapters = nn.ModuleDict()
    for name, module in model.named_modules():
        if isinstance(module, NORM_LAYERS):
            film = FiLM(_channels(module), channel_dim=-1 if isinstance(module, nn.LayerNorm) else 1)
            module.register_forward_hook(lambda _m, _inp, out, film=film: film(out))
            adapters[name.replace(".", "_")] = film
    if not adapters:
        raise ValueError(f"{type(model).__name__} has no normalisation layer to attach FiLM adapters to")
    model.film_adapters = adapters.to(next(model.parameters()).device)
    return list(adapters.parameters())
