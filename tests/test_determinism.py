"""The same seeded training, low-rank, pruning, CSR and int8 run gives the same bits on every machine.

``determinism_workload.py`` runs in a fresh process per configuration of ``emulated_cpus``
(another Numba target, NumPy's baseline SIMD, another OpenBLAS kernel, 1 and 4 threads) and
prints a hash of every parameter and output; each must equal the host's at 2 threads.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from emulated_cpus import CONFIGURATIONS, threads

WORKLOAD = Path(__file__).with_name("determinism_workload.py")


def run_workload(extra_env):
    env = dict(os.environ, **extra_env)
    result = subprocess.run([sys.executable, str(WORKLOAD)], env=env, capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def host():
    return run_workload(threads(2))


def test_workload_covers_every_part(host):
    assert set(host) == {"mlp params", "mlp softmax", "low-rank factors", "cnn params", "augmented batch", "residual cnn", "pruned params",
                         "csr outputs", "dynamic int8 outputs", "static int8 outputs"}


@pytest.mark.parametrize("name", sorted(CONFIGURATIONS))
def test_same_bits_on_another_machine(host, name):
    other = run_workload(dict(threads(2), **CONFIGURATIONS[name]))
    differing = sorted(key for key in host if other.get(key) != host[key])
    assert not differing, f"{name}: {differing} differ from the host's"
