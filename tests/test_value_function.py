"""MetricOpt's parts on toy problems with known answers: densified trajectories, the value function
recovering a monotone metric of phi on a held-out trajectory, the ordinal loss ordering embeddings,
a Reptile step, and Guided ES with a correct guide beating plain ES at equal queries."""

from __future__ import annotations

import copy

import pytest
import torch
from metricbench.methods.correlation import spearman
from metricbench.methods.metricopt.guided_es import guided_es_gradient, orthonormal_basis
from metricbench.methods.metricopt.value_function import (
    PhiProjection,
    Trajectory,
    ValueFunction,
    adapt,
    densify,
    meta_train,
    ordinal_embedding_loss,
    reptile_step,
)


def test_densify_interpolates_between_observations_and_grows_the_uncertainty_away_from_them():
    values, sigmas = densify([0, 10, 20], [0.0, 1.0, 0.0], steps=25, sigma_0=0.01, growth=0.1)
    assert values[5].item() == pytest.approx(0.5) and values[10].item() == pytest.approx(1.0)
    assert values[24].item() == pytest.approx(0.0)  # flat beyond the last observation
    assert sigmas[10].item() == pytest.approx(0.01) and sigmas[5].item() == pytest.approx(0.01 + 0.1 * 5 / 10)
    assert sigmas[24].item() == pytest.approx(0.01 + 0.1 * 4 / 10)


def _toy_trajectory(generator, direction, steps=60, observe_every=6):
    """A random walk of phi with a drift; the metric is a monotone function of direction . phi, observed
    every few steps with noise and densified like a real trajectory's."""
    n = len(direction)
    drift = torch.randn(n, generator=generator) * 0.05
    phis = torch.cumsum(drift + 0.1 * torch.randn(steps, n, generator=generator), dim=0)
    metric = torch.sigmoid(phis @ direction)
    observed = list(range(0, steps, observe_every))
    noisy = [float(metric[t] + 0.005 * torch.randn((), generator=generator)) for t in observed]
    values, sigmas = densify(observed, noisy, steps)
    return phis, values, sigmas, metric


def _toy_problem(seed=0, n=8, trajectories=24, held_out=6):
    generator = torch.Generator().manual_seed(seed)
    direction = torch.randn(n, generator=generator) / n**0.5
    projection = PhiProjection(torch.zeros(n), width=32, scale=1.0, seed=0)
    train = []
    for _ in range(trajectories):
        phis, values, sigmas, _ = _toy_trajectory(generator, direction)
        train.append(Trajectory(projection(phis), values, sigmas))
    held = [_toy_trajectory(generator, direction) for _ in range(held_out)]
    return projection, train, held, generator


def _held_out_correlations(value_function, projection, held):
    with torch.no_grad():
        return torch.tensor([spearman(value_function(projection(phis)), metric) for phis, _, _, metric in held])


def test_the_value_function_recovers_a_monotone_metric_on_held_out_trajectories():
    projection, train, held, generator = _toy_problem()
    pooled = Trajectory(*(torch.cat([getattr(t, f) for t in train]) for f in ("x", "values", "sigmas")))
    torch.manual_seed(0)
    value_function = adapt(ValueFunction(32), pooled, steps=1500, lr=3e-3, generator=generator)
    assert _held_out_correlations(value_function, projection, held).median() > 0.9


def test_reptile_meta_training_alone_gives_an_informative_value_function():
    """Reptile's weights are a starting point that the run's own observations refine; alone they
    already rank held-out trajectories' metrics far better than chance."""
    projection, train, held, generator = _toy_problem()
    torch.manual_seed(0)
    value_function = ValueFunction(32)
    losses = meta_train(value_function, train, meta_steps=300, generator=generator, inner_steps=5, inner_lr=3e-3, epsilon=0.5)
    assert _held_out_correlations(value_function, projection, held).median() > 0.6
    assert sum(losses[-30:]) < sum(losses[:30])


def test_the_ordinal_loss_orders_embeddings_by_metric():
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(80, 8, generator=generator)
    values = torch.sigmoid(x @ torch.randn(8, generator=generator))
    sigmas = torch.full_like(values, 0.02)
    torch.manual_seed(1)
    value_function = ValueFunction(8)

    def agreement():
        """How well embedding distances rank the metric differences of all pairs."""
        with torch.no_grad():
            embeddings = value_function.embed(x)
        distance = torch.cdist(embeddings, embeddings)
        upper = torch.triu(torch.ones(80, 80, dtype=torch.bool), diagonal=1)
        return spearman(distance[upper], (values[:, None] - values[None, :]).abs()[upper])

    before = agreement()
    optimizer = torch.optim.Adam(value_function.parameters(), lr=3e-3)
    for _ in range(300):
        loss = ordinal_embedding_loss(value_function.embed(x), values, sigmas, generator)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert agreement() > max(0.6, before + 0.3), (before, agreement())


def test_a_reptile_step_moves_the_weights_toward_the_adapted_ones():
    torch.manual_seed(2)
    value_function = ValueFunction(4)
    adapted = copy.deepcopy(value_function)
    with torch.no_grad():
        for p in adapted.parameters():
            p.add_(torch.randn_like(p))
    before = [(a - w).clone() for w, a in zip(value_function.parameters(), adapted.parameters(), strict=True)]
    reptile_step(value_function, adapted, 0.25)
    for gap, w, a in zip(before, value_function.parameters(), adapted.parameters(), strict=True):
        assert torch.allclose(a - w, 0.75 * gap, atol=1e-6)


def test_guided_es_with_a_correct_guide_beats_plain_es_at_equal_queries():
    n, pairs, steps = 200, 2, 150
    target = torch.randn(n, generator=torch.Generator().manual_seed(3))

    def f(candidates):
        return ((candidates - target) ** 2).sum(dim=1)

    def run(guided: bool) -> float:
        phi = torch.zeros(n, requires_grad=True)
        optimizer = torch.optim.Adam([phi], lr=0.05)
        generator = torch.Generator().manual_seed(4)
        for _ in range(steps):
            guide = (2 * (phi.detach() - target))[None] if guided else None
            gradient, _, _ = guided_es_gradient(f, phi.detach(), guide, pairs, generator, sigma=0.1, alpha=0.5)
            phi.grad = gradient
            optimizer.step()
        return f(phi.detach()[None]).item()

    start = f(torch.zeros(1, n)).item()
    plain, guided = run(False), run(True)
    assert guided < 0.1 * start and guided < 0.2 * plain, (start, plain, guided)


def test_the_guiding_basis_is_orthonormal_and_drops_repeated_directions():
    g = torch.randn(2, 10, generator=torch.Generator().manual_seed(5))
    basis = orthonormal_basis(torch.cat([g, 2 * g[:1], torch.zeros(1, 10)]))
    assert basis.shape == (10, 2)
    assert torch.allclose(basis.T @ basis, torch.eye(2), atol=1e-5)


def test_a_trajectory_moves_phi_alone_on_a_copy_and_spends_one_batch_query_per_observation(cell_env):
    from metricbench.bench.core.budget import Budget
    from metricbench.bench.run.cell import prepare_finetune
    from metricbench.bench.run.suite import load_suite
    from metricbench.methods.metricopt.trajectories import collect_trajectory, trajectory_settings

    (cell,) = load_suite("smoke").select(tasks=["digits"], methods=["surrogate"]).cells()
    cell = type(cell)(**{**cell.__dict__, "budget": Budget(steps=1, queries=0, batch_queries=100)})
    p = prepare_finetune(cell, cell_env)
    before = {k: v.clone() for k, v in p.model.state_dict().items()}
    batch = p.oracle.batch(32)

    def collect(seed):
        (setting,) = trajectory_settings(1, 1e-2, torch.Generator().manual_seed(seed))
        return collect_trajectory(p.model, p.view, p.oracle, setting, 12, 5, batch, 32, torch.Generator().manual_seed(seed))

    trajectory = collect(0)
    assert trajectory.observed_steps == [0, 5, 10, 12] and len(trajectory.phis) == 13
    assert p.ledger.to_dict()["batch_queries"]["calls"] == 4
    assert (trajectory.phis[-1] - trajectory.phis[0]).abs().max() > 0  # phi moved
    assert all(torch.equal(v, before[k]) for k, v in p.model.state_dict().items())  # the model did not
    again, other = collect(0), collect(1)
    assert torch.equal(trajectory.phis, again.phis) and trajectory.observed_values == again.observed_values
    assert not torch.equal(trajectory.phis, other.phis)
    projection = PhiProjection(trajectory.phis[0], width=16)
    data = trajectory.for_value_function(projection)
    assert data.x.shape == (13, 16) and torch.equal(data.x[0], torch.zeros(16)) and data.values.shape == (13,)


def test_a_metricopt_step_spends_two_batch_queries_per_pair_and_its_observations_refine_the_value_function(cell_env):
    from metricbench.bench.core.budget import Budget
    from metricbench.bench.run.cell import prepare_finetune
    from metricbench.bench.run.suite import load_suite
    from metricbench.methods.adapters import attach_film_adapters
    from metricbench.methods.metricopt.step import ObservationBuffer, metricopt_step, refine
    from metricbench.methods.metricopt.value_function import regression_loss

    (cell,) = load_suite("smoke").select(tasks=["digits"], methods=["surrogate"]).cells()
    cell = type(cell)(**{**cell.__dict__, "budget": Budget(steps=1, queries=0, batch_queries=100)})
    p = prepare_finetune(cell, cell_env)
    for parameter in p.model.parameters():
        parameter.requires_grad_(False)
    adapters = attach_film_adapters(p.model)
    for parameter in adapters.parameters():
        parameter.requires_grad_(True)
    start = adapters.vector()
    projection = PhiProjection(start, width=16, scale=0.1)
    torch.manual_seed(0)
    value_function = ValueFunction(16)
    optimizer = torch.optim.Adam(adapters.parameters(), lr=0.01)
    batches, val_batch, generator = p.view.train_batches(32), p.oracle.batch(32), torch.Generator().manual_seed(0)
    buffer = ObservationBuffer()
    for with_value_function in (False, True, True):
        vf = value_function if with_value_function else None
        report = metricopt_step(
            p.model, adapters, p.view, p.oracle, next(batches), val_batch, optimizer, vf, projection, 3, generator
        )
        assert report.candidates.shape == (6, len(adapters)) and report.values.shape == (6,)
        assert (report.guide_cosine != 0.0) == with_value_function
        buffer.add(projection(report.candidates).detach(), report.values)
    assert p.ledger.to_dict()["batch_queries"]["calls"] == 3 * 6
    assert not torch.equal(adapters.vector(), start)

    sign = 1.0  # misclassification: lower is better, the buffer holds the metric itself
    xs, values = torch.stack(buffer.xs), torch.tensor(buffer.values)
    sigmas = torch.full_like(values, 0.01)
    with torch.no_grad():
        before = regression_loss(value_function(xs), values, sigmas).item()
    vf_optimizer = torch.optim.Adam(value_function.parameters(), lr=3e-3)
    refine(value_function, vf_optimizer, buffer, 100, generator, sign)
    with torch.no_grad():
        after = regression_loss(value_function(xs), values, sigmas).item()
    assert after < 0.5 * before, (before, after)


def test_correlations_match_scipy_with_ties_and_are_zero_when_constant():
    from metricbench.methods.correlation import pearson, ranks
    from scipy import stats

    a = [0.1, 0.4, 0.4, 0.2, 0.9, 0.4, 0.0]
    b = [1.0, 3.0, 2.0, 2.0, 5.0, 1.0, 0.5]
    assert ranks(a).tolist() == (stats.rankdata(a) - 1).tolist()
    assert spearman(a, b) == pytest.approx(stats.spearmanr(a, b).statistic)
    assert pearson(a, b) == pytest.approx(stats.pearsonr(a, b).statistic)
    assert spearman([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]) == 0.0 and pearson([1.0], [2.0]) == 0.0
