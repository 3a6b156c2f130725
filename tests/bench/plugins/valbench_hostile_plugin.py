"""A plugin method that does what a hostile or broken method can do to the process that runs it (``act``)."""

import ctypes
import mmap
import os
import signal
import sys
import time

import numpy as np

from valbench import Valuation, ValuationMethod, register_method
from valbench.params import Rule

ACTS = ("ok", "exit", "os-exit", "segfault", "keyboard", "hog", "sigprof", "deaf-sleep", "chatty")


@register_method
class Hostile(ValuationMethod):
    """Plugin test method: ``act`` = exit (sys.exit(3)), os-exit (os._exit(7)), segfault (a NULL read through
    ctypes), keyboard (raise KeyboardInterrupt), hog (allocate and touch ``mb`` MB), sigprof (ignore SIGALRM
    and SIGPROF, then compute forever), deaf-sleep (block every signal it can, then sleep), chatty (write
    ``lines`` lines to stdout and to stderr, then succeed), ok (succeed)."""

    name = "plugin-hostile"
    params = {"act": "ok", "mb": 10_000, "lines": 20_000}
    param_rules = {"act": Rule(str, choices=ACTS), "mb": Rule(int, low=1), "lines": Rule(int, low=0)}

    def fit(self, data, learner, seed):
        act = self.config["act"]
        if act == "exit":
            sys.exit(3)
        if act == "os-exit":
            os._exit(7)
        if act == "segfault":
            ctypes.string_at(0)
        if act == "keyboard":
            raise KeyboardInterrupt
        if act == "hog":
            touch_memory(self.config["mb"])
        if act == "sigprof":
            for signum in (signal.SIGALRM, signal.SIGPROF, signal.SIGVTALRM):
                signal.signal(signum, signal.SIG_IGN)
            while True:
                pass
        if act == "deaf-sleep":
            signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
            time.sleep(3600)
        if act == "chatty":
            for i in range(self.config["lines"]):
                print(f"stdout line {i}", flush=False)
                print(f"stderr line {i}", file=sys.stderr)
        return Valuation(scores=np.random.default_rng(seed).random(data.n_train))


def touch_memory(mb: int) -> None:
    """Map ``mb`` MB and write to every page of it, in ordinary pages: a first touch of a transparent huge page
    can wait on the kernel compacting memory (seconds a GB on this VM, measured in a forked worker after torch
    loaded), and the CPU cap would then end the cell before the memory limit does."""
    block = mmap.mmap(-1, mb * 2**20)
    block.madvise(mmap.MADV_NOHUGEPAGE)
    np.frombuffer(block, dtype=np.uint8)[::mmap.PAGESIZE] = 1
