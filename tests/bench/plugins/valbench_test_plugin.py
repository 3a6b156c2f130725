"""Methods registered from outside the suite, loaded with ``--plugin``: good, broken, slow, stuck, killing."""

import os
import signal
import time

import numpy as np

from valbench import Valuation, ValuationMethod, register_method


@register_method
class FeatureNorm(ValuationMethod):
    """Plugin test method: points with larger feature norm are worth more."""

    name = "plugin-norm"
    params = {"power": 1}

    def fit(self, data, learner, seed):
        return Valuation(scores=np.linalg.norm(data.x_train, axis=1) ** self.config["power"])


@register_method
class WrongLength(ValuationMethod):
    """Plugin test method that returns one score too few."""

    name = "plugin-wrong-length"

    def fit(self, data, learner, seed):
        return Valuation(scores=np.zeros(data.n_train - 1))


@register_method
class Sleepy(ValuationMethod):
    """Plugin test method that sleeps ``seconds`` before returning random scores."""

    name = "plugin-sleepy"
    params = {"seconds": 0.0}

    def fit(self, data, learner, seed):
        time.sleep(self.config["seconds"])
        return Valuation(scores=np.random.default_rng(seed).random(data.n_train))


@register_method
class Busy(ValuationMethod):
    """Plugin test method that computes (uses CPU time) for ``seconds`` before returning random scores, and for
    ``prepare_seconds`` in :meth:`prepare`."""

    name = "plugin-busy"
    params = {"seconds": 0.0, "prepare_seconds": 0.0}

    def prepare(self):
        spin(self.config["prepare_seconds"])

    def fit(self, data, learner, seed):
        spin(self.config["seconds"])
        return Valuation(scores=np.random.default_rng(seed).random(data.n_train))


def spin(seconds: float) -> None:
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


@register_method
class GradOff(ValuationMethod):
    """Plugin test method that switches autograd off and fails, as a limit landing in torch.no_grad can."""

    name = "plugin-grad-off"

    def fit(self, data, learner, seed):
        import torch

        torch.set_grad_enabled(False)
        raise RuntimeError("interrupted")


@register_method
class Killer(ValuationMethod):
    """Plugin test method that SIGKILLs its worker on the first call (marker file absent), or always with always=1."""

    name = "plugin-killer"
    params = {"marker": "", "always": 0, "delay": 0.0}

    def fit(self, data, learner, seed):
        time.sleep(self.config["delay"])
        marker = self.config["marker"]
        if self.config["always"] or not os.path.exists(marker):
            open(marker, "w").close()
            os.kill(os.getpid(), signal.SIGKILL)
        return Valuation(scores=np.random.default_rng(seed).random(data.n_train))


@register_method
class Stuck(ValuationMethod):
    """Plugin test method that cannot be interrupted by SIGALRM (as in native code) and sleeps ``seconds``."""

    name = "plugin-stuck"
    params = {"seconds": 30.0}

    def fit(self, data, learner, seed):
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
        time.sleep(self.config["seconds"])
        return Valuation(scores=np.zeros(data.n_train))
