"""FiLM adapters (Perez et al. 2018): a per-channel scale and shift after each normalisation layer.

`attach_film_adapters(model)` works on any model without the model knowing. Each adapter is stored
on its normalisation layer as the submodule `film`, and one module-level forward hook applies
`module.film` to the layer's output. Nothing closes over a module object, so

- `copy.deepcopy(model)` gives a copy whose adapters are its own (ES candidates, MetricOpt trajectories);
- the adapters are in `state_dict()` (`...bn1.film.scale`) and `torch.func.functional_call` can
  replace them by name;
- attaching twice finds the adapters already there and adds none.

Scales start at 1 and shifts at 0, so the model computes exactly what it did before. Covered layers:
BatchNorm (any dimension), LayerNorm, GroupNorm and torchvision's FrozenBatchNorm2d (the frozen
norm of pretrained detectors).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn


def _norm_layer_types() -> tuple[type, ...]:
    types: tuple[type, ...] = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm)
    try:
        from torchvision.ops import FrozenBatchNorm2d

        types += (FrozenBatchNorm2d,)
    except ImportError:  # torchvision is optional for models that do not need it
        pass
    return types


NORM_LAYERS = _norm_layer_types()


def _channels(module: nn.Module) -> int:
    if isinstance(module, nn.LayerNorm):
        return module.normalized_shape[-1]
    if isinstance(module, nn.GroupNorm):
        return module.num_channels
    if hasattr(module, "num_features"):
        return module.num_features
    return module.weight.shape[0]  # FrozenBatchNorm2d keeps only its buffers


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


def _apply_film(module: nn.Module, _inputs, output):
    """The forward hook of every adapted layer: it reads the layer's own `film`, so copies stay apart."""
    return module.film(output)


class Adapters:
    """The FiLM adapters of one model: names, parameters (phi), phi as one flat vector, a forward pass
    with a given vector, and removal. Build it with `attach_film_adapters`."""

    def __init__(self, model: nn.Module, layer_names: list[str]):
        self.model = model
        self.layer_names = list(layer_names)

    @property
    def names(self) -> list[str]:
        """Parameter names in the model's namespace, e.g. 'stem.1.film.scale', in vector order."""
        return [f"{layer}.film.{part}" if layer else f"film.{part}" for layer in self.layer_names for part in ("scale", "shift")]

    def _films(self) -> list[FiLM]:
        return [self.model.get_submodule(layer).film for layer in self.layer_names]

    def parameters(self) -> list[nn.Parameter]:
        return [p for film in self._films() for p in (film.scale, film.shift)]

    def __len__(self) -> int:
        """The number of adapter values (the length of the vector)."""
        return sum(p.numel() for p in self.parameters())

    def vector(self) -> torch.Tensor:
        """All adapter values as one detached 1-D tensor (a copy)."""
        return torch.cat([p.detach().reshape(-1) for p in self.parameters()]).clone()

    def set_vector(self, vector: torch.Tensor) -> None:
        """Write a 1-D tensor of `len(self)` values into the adapters (in place, no gradient)."""
        if vector.ndim != 1 or vector.numel() != len(self):
            raise ValueError(f"expected a vector of {len(self)} adapter values, got shape {tuple(vector.shape)}")
        with torch.no_grad():
            for p, values in zip(self.parameters(), self.as_dict(vector).values(), strict=True):
                p.copy_(values)  # a copy: the adapters never share storage with the caller's vector

    def as_dict(self, vector: torch.Tensor) -> dict[str, torch.Tensor]:
        """`vector` split into the adapter tensors by name (views: gradients flow back to `vector`)."""
        params, out, start = self.parameters(), {}, 0
        for name, p in zip(self.names, params, strict=True):
            out[name] = vector[start : start + p.numel()].view_as(p)
            start += p.numel()
        return out

    def call_with(self, vector: torch.Tensor, *args, **kwargs):
        """The model's forward with the adapters set to `vector`, leaving the stored adapters untouched
        (`torch.func.functional_call`; differentiable with respect to `vector`)."""
        return torch.func.functional_call(self.model, self.as_dict(vector), args, kwargs)

    def remove(self) -> None:
        """Take the adapters out again: the model computes what it did before they were attached."""
        for layer in self.layer_names:
            module = self.model.get_submodule(layer)
            for key, hook in list(module._forward_hooks.items()):
                if hook is _apply_film:
                    del module._forward_hooks[key]
            del module.film
        self.layer_names = []


def attach_film_adapters(model: nn.Module, where: Callable[[str, nn.Module], bool] | None = None) -> Adapters:
    """Attach a FiLM adapter after every normalisation layer (or those for which `where(name, module)`
    is true) that has none yet; return all of the model's adapters, in the order of `named_modules()`."""
    device = next(model.parameters(), torch.empty(0)).device
    layers = []
    for name, module in list(model.named_modules()):  # listed first: attaching adds submodules
        if not isinstance(module, NORM_LAYERS) or (where is not None and not where(name, module)):
            continue
        if not hasattr(module, "film"):
            module.film = FiLM(_channels(module), channel_dim=-1 if isinstance(module, nn.LayerNorm) else 1).to(device)
            module.register_forward_hook(_apply_film)
        layers.append(name)
    if not layers:
        raise ValueError(f"{type(model).__name__} has no normalisation layer to attach FiLM adapters to")
    return Adapters(model, layers)
