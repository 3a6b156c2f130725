import numpy as np
import pytest
import torch

from valbench.grid import Cell
from valbench.learners import LogisticRegression
from valbench.protocol import DataError, Dataset
from valbench.registry import get_method
from valbench.runner import run_cell
from valbench.methods.hostcp.faithful import lookahead_valid_loss
from valbench.methods.hostcp.variants import ResidualMap, coverage_scores, label_chunks
from valbench.methods.selection import allot
from tests.conftest import blobs

FAST = {"epochs": 2, "batch_size": 32, "neighbours": 8, "dim": 8}


def clusters(seed: int = 0, per_class: int = 12, flip: bool = True) -> Dataset:
    """Three tight, well separated clusters, one per class; train point 0 (of class 0) is labelled 1."""
    rng = np.random.default_rng(seed)
    centres = np.array([[0.0, 0.0], [6.0, 0.0], [0.0, 6.0]])

    def draw(n):
        y = np.repeat(np.arange(3), n)
        return (centres[y] + rng.normal(scale=0.3, size=(3 * n, 2))).astype(np.float32), y

    x, y = draw(per_class)
    y_clean = y.copy()
    noisy = np.zeros(len(y), dtype=bool)
    if flip:
        y[0], noisy[0] = 1, True
    (xv, yv), (xt, yt) = draw(10), draw(10)
    return Dataset(name="clusters", x_train=x, y_train=y, x_valid=xv, y_valid=yv, x_test=xt, y_test=yt,
                   n_classes=3, noisy_mask=noisy, y_train_clean=y_clean)


def test_flipped_label_is_most_suspect_never_selected_and_every_class_is_covered():
    data = clusters()
    learner = LogisticRegression(data.n_features, data.n_classes)
    budgets = [3, 6, 12]
    valuation = get_method("hostcp-fl")(**FAST).fit(data, learner, seed=0, budgets=budgets)
    valuation.validate("hostcp-fl", data.n_train, budgets)
    assert int(np.argmin(valuation.scores)) == 0  # the flipped point is ranked most suspect
    for k in budgets:
        assert 0 not in valuation.subsets[k]
        assert set(data.y_train[valuation.subsets[k]]) == {0, 1, 2}  # every class has a representative


def test_nested_readout_serves_every_budget_from_one_pass():
    data = clusters()
    learner = LogisticRegression(data.n_features, data.n_classes)
    budgets = [3, 6, 12]
    valuation = get_method("hostcp-fl")(**FAST, readout="nested").fit(data, learner, seed=0, budgets=budgets)
    valuation.validate("hostcp-fl", data.n_train, budgets)
    for k in budgets:
        assert 0 not in valuation.subsets[k]
        assert set(data.y_train[valuation.subsets[k]]) == {0, 1, 2}
    assert set(valuation.subsets[3]) <= set(valuation.subsets[6]) <= set(valuation.subsets[12])  # equal shares here


def test_the_paper_program_without_labels_misses_classes_at_a_small_budget():
    """The contrast: with neither opening variables nor label awareness (k-centre-like selection), some
    seed leaves a class out at k = 3; the label-aware variant never does (the test above)."""
    data = clusters(flip=False)
    learner = LogisticRegression(data.n_features, data.n_classes)
    method = get_method("hostcp-fl")(**FAST, opening=False, label_aware=False, suspects="keep")
    covered = [len(set(data.y_train[method.fit(data, learner, seed=s, budgets=[3]).subsets[3]]))
               for s in range(4)]
    assert min(covered) < 3


def test_same_seed_same_result():
    data = clusters(seed=1)
    learner = LogisticRegression(data.n_features, data.n_classes)
    method = get_method("hostcp-fl")(**FAST)
    a = method.fit(data, learner, seed=3, budgets=[4, 9])
    b = method.fit(data, learner, seed=3, budgets=[4, 9])
    assert np.array_equal(a.scores, b.scores)
    assert all(np.array_equal(a.subsets[k], b.subsets[k]) for k in (4, 9))


@pytest.mark.parametrize("bad, message", [({"detect": "loss"}, "detect"), ({"fraction": 1.5}, "fraction"),
                                          ({"suspects": "hide"}, "suspects"), ({"opening": "maybe"}, "opening"),
                                          ({"batch_size": 1}, "batch_size"), ({"solver": "scs"}, "solver"),
                                          ({"gamma": 0}, "gamma"), ({"readout": "greedy"}, "readout")])
def test_bad_parameters_fail_before_any_work(bad, message):
    data = clusters()
    learner = LogisticRegression(data.n_features, data.n_classes)
    with pytest.raises(DataError, match=message):
        get_method("hostcp-fl")(**bad).fit(data, learner, seed=0, budgets=[3])


def test_the_learned_metric_starts_at_the_identity():
    phi = ResidualMap(4, 8)
    x = torch.randn(5, 4)
    assert torch.equal(phi(x), x)


def outer_step_against_finite_differences(name: str, seed: int, eps: float = 3e-3) -> tuple[float, float, float]:
    """One outer step of ``name`` (hostcp-fl-lookahead or -hypergradient) on the first mini-batch of a blobs
    problem: ``(derivative, |g|, <step, g>)``, where g is the gradient the method hands phi's optimiser and
    derivative is the central finite difference, along g / |g|, of the outer loss the method claims to
    minimise: the look-ahead validation loss, or the validation loss of the learner retrained on the batch's
    selection. The reference holds the selected points and the weights' normaliser (max r over them, detached
    in the method) at their values before the step, as the method's gradient does. The gradient is right when
    derivative = |g|, and the step goes downhill when <step, g> < 0.
    """
    torch.manual_seed(seed)
    data = blobs(n_train=96, n_valid=30, n_classes=3, dim=4, seed=seed)
    method = get_method(name)(**FAST)
    c = method.check()
    rng = np.random.default_rng(seed)
    run = method._start(data, LogisticRegression(data.n_features, data.n_classes), rng, c)
    idx = label_chunks(data.y_train, rng.permutation(data.n_train), c["batch_size"], c["label_aware"])[0]
    old, budget = method._old_columns(run, idx, [], c), c["fraction"] * len(idx)
    params = list(run.phi.parameters())
    start = [p.detach().clone() for p in params]
    s, top = method._select_batch(run, idx, [], c)
    with torch.no_grad():
        scale = method._program(run, idx, old, budget, c)[0][top].max()

    def outer_loss() -> float:
        with torch.no_grad():
            r = method._program(run, idx, old, budget, c)[0]
            weights = torch.zeros_like(r).index_put((top,), r[top] / scale)
        if run.hyper is None:
            return float(lookahead_valid_loss(run.model, run.theta, run.x[idx], run.y[idx], weights, run.eta,
                                              run.xv, run.yv).detach())
        run.hyper.new_pass()
        return run.hyper.backward(idx, weights)

    method._outer_step(run, idx, run.x[idx], run.y[idx], s)
    grad = [torch.zeros_like(p) if p.grad is None else p.grad.detach().clone() for p in params]
    step = sum(float(((p.detach() - p0) * g).sum()) for p, p0, g in zip(params, start, grad))
    norm = float(torch.sqrt(sum((g ** 2).sum() for g in grad)))
    losses = []
    for sign in (1, -1):
        with torch.no_grad():
            for p, p0, g in zip(params, start, grad):
                p.copy_(p0 + sign * eps * g / max(norm, 1e-30))
        losses.append(outer_loss())
    return (losses[0] - losses[1]) / (2 * eps), norm, step


@pytest.mark.parametrize("seed", [2, 3, 5])
def test_the_look_ahead_step_follows_the_gradient_of_the_look_ahead_loss(seed):
    """Learning phi does what it claims: the gradient is the look-ahead loss's (within 10 %, float32 and the
    solver's tolerance; a sign or scale error, or no gradient, fails) and the step taken lowers it to first order."""
    derivative, norm, step = outer_step_against_finite_differences("hostcp-fl-lookahead", seed)
    assert norm > 1e-2
    assert derivative == pytest.approx(norm, rel=0.1)
    assert step < 0


def test_coverage_scores_sign():
    f = torch.tensor([[0.0], [0.1], [0.2], [5.0], [5.1], [0.15]])
    y = np.array([0, 0, 0, 1, 1, 1])  # the last point sits among label 0
    scores = coverage_scores(f, y, knn=2)
    assert scores[5] < 0 < scores[:5].min()


def dense_coverage(f: torch.Tensor, y: np.ndarray, knn: int) -> np.ndarray:
    """The definition on the full N x N distance matrix (the implementation before the blocked search)."""
    dist = torch.cdist(f, f).double().fill_diagonal_(float("inf"))
    same = torch.as_tensor(y[:, None] == y[None, :])

    def nearest(mask):
        k = max(int(min(knn, mask.sum(1).min().item())), 1)
        vals = torch.topk(torch.where(mask, dist, torch.inf), k, largest=False).values
        return torch.where(torch.isfinite(vals), vals, torch.nan).nanmean(1)

    d_same, d_other = nearest(same), nearest(~same)
    d_same = torch.nan_to_num(d_same, nan=float(dist[torch.isfinite(dist)].max()))
    return ((d_other - d_same) / (d_other + d_same).clamp_min(1e-12)).numpy()


@pytest.mark.parametrize("n, classes, knn", [(300, 4, 10), (120, 3, 50), (40, 5, 3)])
def test_blocked_coverage_equals_the_dense_definition(monkeypatch, n, classes, knn):
    import valbench.methods.hostcp.variants as variants

    monkeypatch.setattr(variants, "BLOCK_ENTRIES", 7 * n)  # blocks of 7 rows: many blocks per label
    f = torch.randn(n, 6, generator=torch.Generator().manual_seed(n))
    y = np.random.default_rng(n).integers(0, classes, n)
    y[0] = classes  # a label with a single point
    assert np.allclose(coverage_scores(f, y, knn), dense_coverage(f, y, knn), atol=1e-6)


def test_allot_and_label_chunks():
    assert allot(10, np.array([50, 30, 20])).tolist() == [5, 3, 2]
    parts = allot(3, np.array([5, 5, 5, 5]), floor_one=False)
    assert parts.sum() == 3 and parts.max() == 1
    assert allot(4, np.array([1, 40, 40]), floor_one=True).tolist()[0] == 1
    labels = np.array([0, 1, 0, 1, 0, 1, 0])
    chunks = label_chunks(labels, np.arange(7), 2, label_aware=True)
    assert all(len(set(labels[c])) == 1 and len(c) <= 2 for c in chunks)
    assert sorted(np.concatenate(chunks).tolist()) == list(range(7))


def test_runs_through_the_runner():
    cell = Cell(dataset="synthetic", method="hostcp-fl", seed=0, noise_rate=0.1, budgets=(0.05, 0.3),
                dataset_params={"n_train": 120, "n_valid": 60, "n_test": 200}, method_params={"epochs": 1})
    record = run_cell(cell)
    assert record["status"] == "ok", record.get("error")
    assert [row["k"] for row in record["budgets"]] == [6, 36]


def test_a_frozen_metric_skips_the_training_passes_without_changing_the_subsets():
    """With phi frozen and coverage scores, the training passes feed nothing to the readout: skipping them
    (the default) must leave every subset exactly as when they run (``detect=both`` makes them run)."""
    data = clusters(per_class=20)
    learner = LogisticRegression(data.n_features, data.n_classes)
    budgets = [3, 9, 24]
    skipped = get_method("hostcp-fl")(**FAST).fit(data, learner, seed=3, budgets=budgets)
    trained = get_method("hostcp-fl")(**FAST, detect="both").fit(data, learner, seed=3, budgets=budgets)
    assert "final_valid_loss" not in skipped.extra and "final_valid_loss" in trained.extra
    for k in budgets:
        assert np.array_equal(skipped.subsets[k], trained.subsets[k])
