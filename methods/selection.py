"""Shared building blocks of the set-selection family (k-centre, facility location, CRAIG, GradMatch, oracle).

In the spirit of DeepCore's ``methods_utils``: the pieces several selectors need live here once.

* :func:`allot`: integers summing to a total in proportion to weights (largest remainder);
* :func:`class_budgets`: a budget k split over classes in proportion to their share of the train split,
  rounded by largest remainder (Hamilton) so the class sizes sum to exactly k;
* :func:`nested_readout` / :func:`class_readout`: one greedy order (or one per class) read out as the nested
  subsets of every budget and a score per point (earlier in the greedy order = higher);
* :func:`last_layer_gradients`: the per-point gradient of the cross-entropy with respect to the learner's
  last layer, the embedding of CRAIG and GradMatch;
* :func:`completed_order`: a greedy stopped at the largest budget, the other points ranked by its next key;
* :func:`class_steps`: how many picks each class's greedy needs for every budget;
* :func:`squared_distances`: the dense pairwise squared distances in one n x n allocation;
* :func:`facility_location_order`: apricot's lazy-greedy facility location on a precomputed similarity;
* :func:`medoid_weights`: CRAIG's weight of each selected medoid, the size of its cluster;
* :func:`float32_slack` / :func:`screened_argmax`: the argmax of float64 dot products found from a float32 pass
  (half the memory traffic) and the float64 values of the few points the float32 error could promote, for
  matrices of at least :data:`SCREEN_MIN_ELEMENTS`; :func:`best_eligible`: the plain argmax below that.
"""

from __future__ import annotations

import functools
from typing import Callable, Sequence

import numpy as np
import torch

from valbench.learners import FittedModel


def allot(total: int, weights: np.ndarray, floor_one: bool = False) -> np.ndarray:
    """Integers summing to ``total`` proportional to ``weights`` (largest remainders), each <= its weight's
    share cap ``weights`` (counts); ``floor_one`` gives every part at least one where total allows."""
    weights = np.asarray(weights, dtype=float)
    quota = total * weights / weights.sum()
    out = np.floor(quota).astype(int)
    if floor_one and total >= len(weights):
        out = np.maximum(out, 1)
    while out.sum() > total:
        out[np.argmax(out - quota)] -= 1
    remainder = np.argsort(-(quota - out), kind="stable")
    for i in remainder[: total - out.sum()]:
        out[i] += 1
    return np.minimum(out, weights.astype(int))


def class_budgets(y: np.ndarray, k: int) -> dict[int, int]:
    """``{class: k_c}`` with k_c ~ k n_c / n, rounded by largest remainder (:func:`allot`) so that
    sum_c k_c = k exactly. Each k_c <= n_c. Remainders tie-break by class label (deterministic).
    """
    classes, counts = np.unique(y, return_counts=True)
    if not 0 <= k <= len(y):
        raise ValueError(f"budget {k} must lie in [0, {len(y)}]")
    return {int(c): int(s) for c, s in zip(classes, allot(k, counts))}


def order_scores(order: np.ndarray, n: int) -> np.ndarray:
    """Scores from a greedy order: the first pick scores 1, the last 1/len(order), points never picked 0."""
    scores = np.zeros(n)
    scores[order] = (len(order) - np.arange(len(order))) / len(order)
    return scores


def float32_slack(length: int, magnitude: np.ndarray) -> np.ndarray:
    """A bound on how far a float32 dot product of ``length`` terms (inputs rounded from float64) can be from its
    float64 value, given ``magnitude`` >= sum |a_k b_k| (e.g. ||a|| ||b||).

    The rounding of the inputs and of any summation order is within (length + 2) u of ``magnitude`` (u = 2^-24;
    Higham, "Accuracy and Stability of Numerical Algorithms", 2nd ed., eq. 3.5); the float64 value's own error is
    2^29 times smaller. The bound doubles that and adds 32 roundings for the few operations around the product
    (a bias, a sum over classes, a step size), so it holds with room to spare.
    """
    return 2.0 * (length + 34) * 2.0 ** -24 * np.asarray(magnitude, dtype=np.float64)


SCREEN_MIN_ELEMENTS = 1 << 20
"""The smallest matrix (elements, 8 MB in float64) a greedy screens in float32: below it the float64 pass is cheap
and the screen's own per-step work costs more than it saves (GLISTER on 600 x 16 points: 1.4x slower screened)."""


def best_eligible(values: np.ndarray, excluded: np.ndarray | list[int]) -> tuple[int, float]:
    """The index and value of the largest of ``values`` outside ``excluded`` (ties to the lowest index)."""
    values = np.array(values, dtype=np.float64)
    values[excluded] = -np.inf
    best = int(np.argmax(values))
    return best, float(values[best])


def screened_argmax(approx: np.ndarray, slack: np.ndarray,
                    exact: Callable[[np.ndarray | slice], np.ndarray]) -> tuple[int, float]:
    """The index and value of the largest ``exact`` value, found without computing it for every point.

    ``approx`` is every point's value computed cheaply (float32; -inf for points not eligible) and ``slack`` a
    bound on its distance from the exact one (:func:`float32_slack`). Only the points whose approximation is within
    twice the slack of the best lower bound can hold the maximum; ``exact(indices)`` computes their values
    (ascending indices), and the largest wins, ties to the lowest index as ``np.argmax`` over all points would.
    The greedy selectors are memory-bound: their float64 pass over an n x d matrix per step becomes a float32
    pass and an exact pass over a handful of rows. Where the screen cannot rule out a quarter of the points (values
    all near zero against their magnitude, as when OMP's residual is almost spent), ``exact(slice(None))``
    computes every value in one pass instead.
    """
    approx = np.asarray(approx, dtype=np.float64)
    floor = np.max(approx - slack)
    candidates = np.flatnonzero(approx + slack >= floor)
    if 4 * len(candidates) > len(approx):
        return best_eligible(exact(slice(None)), np.isneginf(approx))
    values = np.asarray(exact(candidates), dtype=np.float64)
    best = int(np.argmax(values))
    return int(candidates[best]), float(values[best])


def completed_order(picked: np.ndarray, n: int, key: np.ndarray) -> np.ndarray:
    """A greedy order stopped early, completed: ``picked`` first, then every other point by ``key`` descending.

    A greedy selector needs only as many picks as the largest budget; the points it never reached are ranked
    by what the greedy would have looked at next (k-centre: the distance to the nearest centre; facility
    location or GLISTER: the marginal gain after the last pick), ties to the lowest index, so every point still
    gets a distinct score for the mislabel AUC and the removal curve.
    """
    picked = np.asarray(picked, dtype=np.int64)
    rest = np.setdiff1d(np.arange(n), picked)
    rest = rest[np.argsort(-np.asarray(key, dtype=np.float64)[rest], kind="stable")]
    return np.concatenate([picked, rest])


def nested_readout(order: np.ndarray, n: int, budgets: Sequence[int]) -> tuple[dict[int, np.ndarray], np.ndarray]:
    """``(subsets, scores)`` of one greedy order: ``subsets[k]`` is its first k points (nested in k)."""
    order = np.asarray(order, dtype=np.int64)
    short = [k for k in budgets if k > len(order)]
    if short:
        raise ValueError(f"the greedy order has {len(order)} points, fewer than the budgets {short}")
    return {int(k): np.sort(order[:k]) for k in budgets}, order_scores(order, n)


def class_readout(orders: dict[int, np.ndarray], y: np.ndarray,
                  budgets: Sequence[int]) -> tuple[dict[int, np.ndarray], np.ndarray]:
    """``(subsets, scores)`` of one greedy order per class (indices into the whole train split).

    ``subsets[k]`` takes the first k_c points of class c's order (:func:`class_budgets`). A point's score is
    its class order's score (1 for a class's first pick, down to 1/n_c), so the top k by score follow the
    same class shares.
    """
    subsets = {}
    for k in budgets:
        split = class_budgets(y, int(k))
        short = {c: k_c for c, k_c in split.items() if k_c > len(orders[c])}
        if short:
            raise ValueError(f"budget {k}: the class orders are shorter than their shares {short}")
        subsets[int(k)] = np.sort(np.concatenate([orders[c][:k_c] for c, k_c in split.items()]))
    scores = np.zeros(len(y))
    for order in orders.values():
        scores[order] = order_scores(order, len(y))[order]
    return subsets, scores


def per_class(y: np.ndarray, select: Callable[[np.ndarray], np.ndarray]) -> dict[int, np.ndarray]:
    """``{class: order}``: ``select(members)`` returns an order of positions into ``members`` (a class's
    train indices); it is mapped back to train indices."""
    return {int(c): (members := np.flatnonzero(y == c))[select(members)] for c in np.unique(y)}


def last_layer_gradients(model: FittedModel, x: np.ndarray, y: np.ndarray, with_input: bool = True,
                         chunk: int = 2048) -> np.ndarray:
    """Per-point gradient of CE(f(x_i), y_i) w.r.t. the last linear layer: ``[p_i - e_{y_i}, (p_i - e_{y_i}) x h_i]``.

    p_i = softmax(logits), h_i the last layer's input (x itself for logistic regression, the hidden layer of
    the MLP). The bias part alone (``with_input=False``) is GradMatch/CORDS's cheap variant; both parts are
    the full last-layer gradient used by CRAIG (DeepCore's ``calc_gradient``). Shape (n, C) or (n, C (1 + h)),
    float64, filled ``chunk`` rows at a time: the float32 outer products and their concatenation existed
    whole beside the float64 result before (3.4 GB peak for CRAIG at 20,000 Fashion-MNIST points).
    """
    module = model.module
    last = module if isinstance(module, torch.nn.Linear) else module[-1]
    n, c = len(y), model.n_classes
    out = None
    with torch.no_grad():
        for start in range(0, n, chunk):
            xt = torch.as_tensor(x[start:start + chunk], dtype=torch.float32)
            hidden = xt if last is module else module[:-1](xt)
            residual = torch.softmax(last(hidden), dim=1)
            residual[torch.arange(len(xt)), torch.as_tensor(y[start:start + chunk])] -= 1.0
            width = c if not with_input else c * (1 + hidden.shape[1])
            if out is None:
                out = np.empty((n, width), dtype=np.float64)
            out[start:start + len(xt), :c] = residual.double().numpy()
            if with_input:
                out[start:start + len(xt), c:] = (residual[:, :, None] * hidden[:, None, :]).flatten(1).double().numpy()
    return out if out is not None else np.zeros((0, c))


def squared_distances(x: np.ndarray) -> np.ndarray:
    """The n x n squared Euclidean distances of the rows of ``x`` (float64), built in one allocation.

    ||x_i||^2 + ||x_j||^2 - 2 x_i . x_j with the products in one matrix multiply and every other step in place
    (scikit-learn's ``pairwise_distances`` holds two n x n arrays at its peak: 3.9 GB for Shuttle's largest
    class of ~15,600 points at 20,000 train points); clipped at 0 against rounding, the diagonal exactly 0.
    """
    xt = torch.as_tensor(np.ascontiguousarray(x), dtype=torch.float64)
    norms = (xt * xt).sum(1)
    d = xt @ xt.T
    d.mul_(-2.0).add_(norms[:, None]).add_(norms[None, :]).clamp_(min=0.0).fill_diagonal_(0.0)
    return d.numpy()


def distance_similarity(distance: np.ndarray) -> np.ndarray:
    """Similarity max(D) - D + 1e-3 (non-negative, as facility location needs; DeepCore's CRAIG), in place."""
    return np.subtract(distance.max(initial=0.0) + 1e-3, distance, out=distance)


def class_steps(y: np.ndarray, budgets: Sequence[int]) -> dict[int, int]:
    """``{class: k_c}`` at the largest budget: how many picks a per-class greedy needs to serve every budget.

    :func:`class_budgets` gives each class its largest-remainder share, and a class's share can be largest
    at a budget other than the largest (by one point), so this is the maximum over the budgets.
    """
    steps = {int(c): 0 for c in np.unique(y)}
    for k in budgets:
        for c, k_c in class_budgets(y, int(k)).items():
            steps[c] = max(steps[c], k_c)
    return steps


def _compiled_once(factory: Callable) -> Callable:
    """A memoised kernel factory whose kernel is compiled on its first call, not when it is built."""

    @functools.cache
    def build(*args):
        kernel = None

        def call(*arrays):
            nonlocal kernel
            if kernel is None:
                kernel = factory(*args)
            return kernel(*arrays)

        return call

    return build


def apricot_facility_location() -> type:
    """apricot's ``FacilityLocationSelection``, with its numba kernels compiled once per process, when used.

    apricot 0.6.1 builds and compiles its gain kernels inside every ``fit`` (``cache=False``), the streaming
    (sieve) kernel too, which lazy greedy never calls: 4-5 s per ``fit``, paid once per class by a per-class
    selection. The factories are pure functions of their (hashable) arguments, so compiling each once, on
    first use, changes nothing but the time (measured: 5.6 s -> 1.0 s for the first fit, 3.3 s -> 2 ms after).
    """
    from apricot.functions import facilityLocation as module

    if not getattr(module, "_kernels_compiled_once", False):
        for factory in ("calculate_gains", "calculate_gains_sparse", "calculate_gains_sieve"):
            setattr(module, factory, _compiled_once(getattr(module, factory)))
        module._kernels_compiled_once = True
    return module.FacilityLocationSelection


@functools.cache
def compile_facility_location() -> None:
    """Compile apricot's dense and sparse gain kernels in this process, on a 3 x 3 similarity: their signatures
    are fixed (float64 values, int32 indices), so these are the kernels every later fit calls (about 3 CPU s,
    paid once per process). A method's :meth:`~valbench.protocol.ValuationMethod.prepare`."""
    from scipy.sparse import csr_matrix

    similarity = np.array([[2.0, 1.0, 0.0], [1.0, 2.0, 1.0], [0.0, 1.0, 2.0]])
    facility_location_order(similarity, 2)
    facility_location_order(csr_matrix(similarity), 2)


def facility_location_order(similarity, n_select: int) -> np.ndarray:
    """apricot's lazy greedy on a precomputed (dense or sparse CSR) similarity: the first ``n_select`` picks,
    then (:func:`completed_order`) every other point by its marginal gain after the last pick.

    Greedy maximises F(S) = sum_i max_{j in S} sim[j, i] (row j: what candidate j covers); it is nested (its
    first k picks are its answer for budget k) and within (1 - 1/e) of the optimum (Nemhauser, Wolsey &
    Fisher 1978). apricot stops once every gain is zero; the rest then follow in index order (gain 0).
    """
    n = similarity.shape[0]
    n_select = min(int(n_select), n)
    if n <= 1:
        return np.arange(n)
    covered = np.zeros(n)
    picked = np.zeros(0, dtype=np.int64)
    if n_select > 0:
        threads = torch.get_num_threads()
        try:
            selector = apricot_facility_location()(n_select, metric="precomputed", optimizer="lazy").fit(similarity)
        finally:  # numba's threading layer resets the OpenMP thread count it shares with torch (1 -> all cores)
            torch.set_num_threads(threads)
        picked = np.asarray(selector.ranking, dtype=np.int64)
        covered = np.asarray(selector.current_values, dtype=np.float64)
    return completed_order(picked, n, facility_location_gains(similarity, covered))


def facility_location_gains(similarity, covered: np.ndarray, chunk: int = 1024) -> np.ndarray:
    """F(S + j) - F(S) for every candidate j: sum_i max(sim[j, i] - covered_i, 0), ``covered_i`` = max_{s in S}
    sim[s, i]; dense rows in chunks (no second n x n array), a CSR matrix on its stored entries."""
    if hasattr(similarity, "tocsr"):
        excess = similarity.tocsr(copy=True)
        excess.data = np.maximum(excess.data - covered[excess.indices], 0.0)
        return np.asarray(excess.sum(axis=1)).ravel()
    gains = np.empty(len(similarity))
    excess = np.empty((min(chunk, len(similarity)), len(covered)))  # one buffer: no two fresh temporaries a chunk
    for i in range(0, len(similarity), chunk):
        block = similarity[i:i + chunk]
        rows = excess[:len(block)]
        np.subtract(block, covered[None, :], out=rows)
        np.maximum(rows, 0.0, out=rows)
        rows.sum(1, out=gains[i:i + chunk])
    return gains


def medoid_weights(similarity: np.ndarray, medoids: np.ndarray, chunk: int = 512) -> np.ndarray:
    """CRAIG's weights: gamma_j = |{i : j = argmax_{m in medoids} sim[i, m]}|, the size of j's cluster.

    They sum to the number of rows (every point is assigned to its most similar medoid; ties to the first).
    The medoids' columns are gathered ``chunk`` rows at a time with ``np.take``, which lays them out row by row:
    ``similarity[:, medoids]`` returns them column-major, and both the gather and the row-wise argmax then
    stride through memory (10 s against 0.7 s for 15,700 rows x 4,710 medoids), into an n x k temporary.
    """
    similarity = np.asarray(similarity)
    nearest = np.concatenate([np.argmax(np.take(similarity[i:i + chunk], medoids, axis=1), axis=1)
                              for i in range(0, len(similarity), chunk)] or [np.zeros(0, dtype=np.intp)])
    return np.bincount(nearest, minlength=len(medoids)).astype(np.float64)
