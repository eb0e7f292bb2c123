"""Lesson 17's checkpoints are what notebooks/checkpoints/make_17.py makes."""
import os
import runpy

import numpy as np

import minitorch_compress as mc

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "notebooks", "checkpoints", "make_17.py")


def test_make_17_reproduces_a_stored_network_bit_for_bit():
    script = runpy.run_path(SCRIPT)
    state = mc.load(script["path"](0))
    assert {key.split(":")[0] for key in state} == set(script["NAMES"])
    for name in script["NAMES"]:            # every stored network loads into the architecture it names
        script["load"](state, name)
    train_set, val_set, _ = script["mnist"]()
    model, _ = script["train"]("scratch", 0, train_set, val_set)     # the cheapest to train again
    again = script["stored"]("scratch", model)
    assert set(again) == {key for key in state if key.startswith("scratch:")}
    for key, value in again.items():
        assert value.dtype == state[key].dtype == np.float16
        np.testing.assert_array_equal(value, state[key].data, err_msg=key)
