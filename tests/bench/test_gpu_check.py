"""benchmarks/gpu_check.py skips cleanly (exit 0, a message) where torch sees no CUDA device."""

import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_check.py"


def test_gpu_check_skips_without_cuda():
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}  # hides any GPU from torch
    result = subprocess.run([sys.executable, str(SCRIPT)], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "skipped, torch sees no CUDA device" in result.stdout
