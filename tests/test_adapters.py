"""FiLM adapters on every registered task's model: identity at attachment, independent deepcopies,
no stacking, a flat vector, a functional forward with a given vector, state_dict, removal."""

from __future__ import annotations

import copy

import pytest
import torch
from helpers.paper_options import SMALL_OPTIONS
from metricbench.bench.run.datasets import fixture
from metricbench.bench.run.pretrain import seeded_model
from metricbench.methods.adapters import _apply_film, attach_film_adapters
from metricbench.tasks import create_task, list_tasks
from metricbench.tasks.kinds.base import DataPaths
from metricbench.tasks.kinds.detection import images_to_model
from torch import nn
from torchvision.ops import FrozenBatchNorm2d


@pytest.fixture(scope="module")
def datasets_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("datasets")


@pytest.fixture(scope="module")
def fixtures_dir(tmp_path_factory):
    """The paper tasks read their datasets from disk: each gets its tiny same-format fixture here."""
    return tmp_path_factory.mktemp("fixtures")


def _model_and_inputs(name, datasets_dir, fixtures_dir):
    task = create_task(name, **SMALL_OPTIONS.get(name, {}))
    data_dir = None
    if task.requires_data:
        data_dir = fixtures_dir / name
        if not data_dir.exists():
            fixture(name, data_dir)
    batch = next(task.load_splits(DataPaths(data_dir, datasets_dir)).val.eval_batches(3))
    model = seeded_model(task, 0).eval()
    return task, model, batch.inputs


def _flat(outputs) -> torch.Tensor:
    if isinstance(outputs, torch.Tensor):
        return outputs.detach().reshape(-1)
    return torch.cat([v.detach().float().reshape(-1) for d in outputs for v in d.values()])


def _outputs(task, model, inputs):
    """Raw outputs (logits, embeddings; a detector's detections): an untrained model's probabilities
    can saturate to exactly one-hot, where a change of the adapters would not show."""
    return task.predict(model, inputs) if task.kind == "detection" else model(inputs)


def _same(a, b) -> bool:
    a, b = _flat(a), _flat(b)
    return a.shape == b.shape and torch.equal(a, b)


@pytest.mark.parametrize("name", list_tasks())
def test_adapters_start_as_the_identity_and_copies_keep_their_own(name, datasets_dir, fixtures_dir):
    task, model, inputs = _model_and_inputs(name, datasets_dir, fixtures_dir)
    with torch.no_grad():
        before = _outputs(task, model, inputs)
        adapters = attach_film_adapters(model)
        assert len(adapters) > 0 and len(adapters.names) == len(adapters.parameters())
        assert _same(_outputs(task, model, inputs), before)

        twin = copy.deepcopy(model)
        twin_adapters = attach_film_adapters(twin)  # finds the copied adapters, adds none
        assert twin_adapters.names == adapters.names
        moved = twin_adapters.vector() + 0.5 * torch.randn(len(twin_adapters), generator=torch.Generator().manual_seed(0))
        twin_adapters.set_vector(moved)
        assert not _same(_outputs(task, twin, inputs), before)
        assert _same(_outputs(task, model, inputs), before)  # the original is untouched
        assert not torch.equal(adapters.vector(), moved)


@pytest.mark.parametrize("name", list_tasks())
def test_a_functional_forward_with_a_vector_equals_setting_it(name, datasets_dir, fixtures_dir):
    task, model, inputs = _model_and_inputs(name, datasets_dir, fixtures_dir)
    adapters = attach_film_adapters(model)
    start = adapters.vector()
    vector = start + 0.3 * torch.randn(len(adapters), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        if task.kind == "detection":  # an eval-mode detector returns its detections itself
            functional = adapters.call_with(vector, images_to_model(inputs))
        else:
            functional = adapters.call_with(vector, inputs)
        assert torch.equal(adapters.vector(), start)  # the stored adapters are untouched
        adapters.set_vector(vector)
        assert torch.equal(adapters.vector(), vector)
        assert torch.allclose(_flat(_outputs(task, model, inputs)), _flat(functional), atol=1e-6)


def test_gradients_flow_to_the_vector_through_the_functional_forward():
    model = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 1)).eval()
    adapters = attach_film_adapters(model)
    vector = adapters.vector().requires_grad_()
    adapters.call_with(vector, torch.randn(5, 4)).sum().backward()
    assert vector.grad is not None and vector.grad.abs().sum() > 0


def test_attaching_twice_stacks_nothing_and_removal_restores_the_model():
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 2, 1), nn.GroupNorm(1, 2)).eval()
    x = torch.randn(2, 1, 6, 6)
    before = model(x)
    first = attach_film_adapters(model)
    second = attach_film_adapters(model)
    assert len(first) == len(second) == 2 * (4 + 2)
    hooks = [h for m in model.modules() for h in m._forward_hooks.values() if h is _apply_film]
    assert len(hooks) == 2
    first.set_vector(torch.linspace(-1, 1, len(first)))
    assert not torch.equal(model(x), before)
    assert {"1.film.scale", "1.film.shift", "4.film.scale", "4.film.shift"} <= set(model.state_dict())
    first.remove()
    assert torch.equal(model(x), before) and not any(hasattr(m, "film") for m in model.modules())


def test_frozen_batch_norm_of_pretrained_detectors_is_covered():
    model = nn.Sequential(nn.Conv2d(3, 8, 3), FrozenBatchNorm2d(8), nn.ReLU())
    adapters = attach_film_adapters(model)
    assert adapters.names == ["1.film.scale", "1.film.shift"] and len(adapters) == 16


def test_where_selects_layers_and_a_model_without_norm_layers_is_an_error():
    model = nn.Sequential(nn.Linear(3, 3), nn.LayerNorm(3), nn.Linear(3, 3), nn.BatchNorm1d(3))
    only_layer_norm = attach_film_adapters(model, where=lambda _name, m: isinstance(m, nn.LayerNorm))
    assert only_layer_norm.names == ["1.film.scale", "1.film.shift"]
    with pytest.raises(ValueError, match="no normalisation layer"):
        attach_film_adapters(nn.Linear(2, 2))


def test_the_surrogate_with_adapters_only_changes_the_adapters_and_nothing_else(cell_env):
    from dataclasses import replace

    from metricbench.bench.run.cell import prepare_finetune
    from metricbench.bench.run.suite import load_suite
    from metricbench.methods import create_method
    from metricbench.methods.base import run_finetune

    (cell,) = load_suite("smoke").select(tasks=["breast-cancer"], methods=["surrogate"]).cells()
    p = prepare_finetune(replace(cell, method_options={**cell.method_options, "params": "adapters"}), cell_env)
    before = {name: value.clone() for name, value in p.model.named_parameters()}
    run_finetune(create_method("surrogate", params="adapters"), p.model, p.view, p.oracle, p.ctx)
    after = dict(p.model.named_parameters())
    adapted = {name for name in after if ".film." in name}
    assert adapted and not adapted & set(before)
    assert all(torch.equal(before[name], after[name]) for name in before)  # the backbone is frozen
    assert any(not torch.equal(after[name], torch.ones_like(after[name])) for name in adapted if name.endswith("scale"))
