import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from joblib import Parallel, delayed

from valbench.cache import FitCache, dataset_fingerprint, default_cache_dir
from valbench.cli import main
from valbench.learners import make_learner
from valbench.metrics import REMOVAL_FRACTIONS
from valbench.metrics import test_performance as performance
from valbench.registry import get_dataset, load_installed
from valbench.datasets.noise import inject_noise


def wine(seed=0, noise=0.1):
    load_installed()
    return inject_noise(get_dataset("wine")(seed=seed), noise, seed=seed)


def logreg(data, **params):
    return make_learner("logreg", data.n_features, data.n_classes, **params)


def test_cached_performance_equals_a_fresh_fit_and_keys_by_sorted_subset(tmp_path):
    data = wine()
    cache = FitCache(tmp_path)
    idx = np.random.default_rng(0).permutation(data.n_train)[:40]
    fresh = performance(data, logreg(data), idx)
    first = performance(data, logreg(data), idx, cache)
    again = performance(data, logreg(data), idx[::-1].copy(), cache)  # same set, other order
    assert first == fresh == again
    assert cache.counts() == {"hits": 1, "misses": 1}
    learner = logreg(data)
    performance(data, learner, idx, cache)
    assert learner.fits == 0  # a hit trains nothing


def test_dataset_learner_and_subset_each_change_the_key(tmp_path):
    data = wine()
    cache = FitCache(tmp_path)
    performance(data, logreg(data), None, cache)
    performance(wine(noise=0.2), logreg(data), None, cache)  # other noisy labels
    performance(wine(seed=1), logreg(data), None, cache)  # other split
    performance(data, logreg(data, l2=0.1), None, cache)  # other learner
    performance(data, logreg(data), np.arange(30), cache)  # a subset
    assert cache.counts() == {"hits": 0, "misses": 5}
    assert dataset_fingerprint(data) == dataset_fingerprint(wine())


def _fill(directory, seed):
    data = wine()
    cache = FitCache(directory)
    for k in (20, 40, 60, 80):
        performance(data, logreg(data), np.arange(k), cache)
    return cache.counts()


def test_processes_share_the_cache_directory_safely(tmp_path):
    counts = Parallel(n_jobs=2, backend="loky")(delayed(_fill)(str(tmp_path), s) for s in range(4))
    assert sum(c["hits"] + c["misses"] for c in counts) == 16
    cache = FitCache(tmp_path)  # every entry is readable afterwards: all hits
    data = wine()
    for k in (20, 40, 60, 80):
        assert performance(data, logreg(data), np.arange(k), cache) == performance(
            data, logreg(data), np.arange(k))
    assert cache.counts() == {"hits": 4, "misses": 0}


def test_runs_hit_the_cache_across_methods_and_reruns_and_no_cache_turns_it_off(tmp_path, monkeypatch):
    monkeypatch.delenv("VALBENCH_CACHE_DIR", raising=False)
    args = ["run", "--methods", "random,knn-shapley", "--datasets", "wine", "--seeds", "0", "--budgets", "0.2,0.5",
            "--no-progress", "--out", str(tmp_path)]

    def rows(run_id):
        lines = (tmp_path / run_id / "results.jsonl").read_text().splitlines()
        return {r["method"]: r for r in map(json.loads, lines)}

    assert main([*args, "--run-id", "a"]) == 0
    first = rows("a")
    assert first["random"]["fit_cache"]["hits"] + first["knn-shapley"]["fit_cache"]["hits"] == 1  # the full-data fit
    assert default_cache_dir(tmp_path).is_dir()
    assert main([*args, "--run-id", "b"]) == 0
    second = rows("b")
    fits = 1 + 2 + len(REMOVAL_FRACTIONS)  # all data, two budgets, the removal curve
    assert all(r["fit_cache"] == {"hits": fits, "misses": 0} for r in second.values())
    for m in ("random", "knn-shapley"):
        assert second[m]["budgets"] == first[m]["budgets"]
        assert second[m]["full_accuracy"] == first[m]["full_accuracy"]
    assert main([*args, "--run-id", "c", "--no-cache"]) == 0
    third = rows("c")
    assert all("fit_cache" not in r for r in third.values())
    for m in ("random", "knn-shapley"):
        assert third[m]["budgets"] == first[m]["budgets"]


def test_the_timed_full_fit_is_trained_once_per_dataset_and_learner(tmp_path, monkeypatch):
    """The cap's full-data fit: with the cache, the first cell trains and times it, the others read both back;
    the result is the uncached fit's, and the plain full-data entry is kept apart."""
    from valbench.metrics import timed_full_performance

    data = wine()
    learner = logreg(data)
    fresh, fresh_cost = timed_full_performance(data, learner)
    cache = FitCache(tmp_path)
    first, first_cost = timed_full_performance(data, learner, cache)
    fits = learner.fits
    again, again_cost = timed_full_performance(data, learner, cache)
    assert learner.fits == fits and cache.counts() == {"hits": 1, "misses": 1}  # no second fit
    assert first == again == fresh and set(fresh) >= {"accuracy", "loss", "balanced_accuracy"}
    assert again_cost == first_cost and first_cost.cpu_s > 0 and fresh_cost.cpu_s > 0
    assert performance(data, learner, cache=cache) == fresh  # the plain entry: a miss of its own, same result
    assert cache.counts() == {"hits": 1, "misses": 2}
