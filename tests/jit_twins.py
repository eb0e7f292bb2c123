"""Run a script twice, with Numba's JIT off (every kernel's plain-Python twin) and on, and return
the two ``.npz`` files it wrote (the script saves its arrays to the path in ``sys.argv[1]``)."""
import os
import subprocess
import sys

import numpy as np


def run_jit_off_and_on(script_text, tmp_path):
    script = tmp_path / "script.py"
    script.write_text(script_text)
    for name, jit_off in (("python", "1"), ("compiled", "0")):
        env = dict(os.environ, NUMBA_DISABLE_JIT=jit_off)
        run = subprocess.run([sys.executable, "-W", "error", str(script), str(tmp_path / name)], env=env,
                             capture_output=True, text=True, timeout=900)
        assert run.returncode == 0, run.stderr[-3000:]
    return np.load(tmp_path / "python.npz"), np.load(tmp_path / "compiled.npz")
