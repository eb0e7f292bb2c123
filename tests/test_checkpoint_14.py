"""notebooks/checkpoints/make_14.py reproduces lesson 14's stored network bit for bit (seed 0; the
other seeds run the same code)."""
from pathlib import Path
import runpy

import numpy as np

import minitorch_compress as mc

SCRIPT = Path(__file__).resolve().parents[1] / "notebooks" / "checkpoints" / "make_14.py"


def test_make_14_reproduces_the_stored_network():
    make_14 = runpy.run_path(str(SCRIPT))
    stored = mc.load(make_14["PATH"])
    assert sorted({key.split(":")[0] for key in stored}) == ["0", "1000", "2000"]
    train_set, val_set, _ = make_14["mnist_14"]()
    model, _ = make_14["train"](0, train_set, val_set)
    state = model.state_dict()
    assert {f"0:{k}" for k in state} == {k for k in stored if k.startswith("0:")}
    for name, value in state.items():
        np.testing.assert_array_equal(value.data, stored[f"0:{name}"].data, err_msg=name)
        assert value.data.dtype == stored[f"0:{name}"].data.dtype
    loaded = make_14["load"](stored, 0)
    assert not loaded.training and np.array_equal(loaded[0].weight.data, state["0.weight"].data)
