"""The paper's models have the published sizes and run forward on the inputs their tasks give them."""

from __future__ import annotations

import pytest
import torch
from metricbench.tasks.models.paper import CifarResNet, nasnet_a_large, nasnet_a_mobile, resnet32_cifar
from torch import nn


def parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_resnet32_is_he_et_al_s_cifar_resnet():
    model = resnet32_cifar()
    assert parameters(model) == 464_154  # the paper's "0.46M" (option-A shortcuts have no parameters)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 31 and all(c.kernel_size == (3, 3) for c in convs)  # + the linear layer: 32 weighted layers
    assert sorted({c.out_channels for c in convs}) == [16, 32, 64]
    logits = model(torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8))
    assert logits.shape == (4, 10)
    with pytest.raises(ValueError, match="6n\\+2"):
        CifarResNet(30)


def test_nasnet_a_mobile_has_the_published_size_and_runs_at_224():
    torch.manual_seed(0)
    model = nasnet_a_mobile()
    trainable = parameters(model)
    running = sum(b.numel() for name, b in model.named_buffers() if name.endswith(("running_mean", "running_var")))
    assert trainable == 5_289_978
    assert trainable + running == 5_326_716  # "5.3M": the published count includes BatchNorm's statistics
    assert abs(trainable - 5.3e6) / 5.3e6 < 0.01
    with torch.no_grad():
        assert model.eval()(torch.randn(1, 3, 224, 224)).shape == (1, 1000)


def test_nasnet_a_large_is_timm_s():
    assert abs(parameters(nasnet_a_large()) - 88.9e6) / 88.9e6 < 0.01
