"""Lesson 13's stored encoders are what notebooks/checkpoints/make_13.py makes: seed 0 pre-trained
again here equals the stored one bit for bit (the other seeds run the same code)."""
import importlib.util
import os

import numpy as np

import minitorch_compress as mc

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "notebooks", "checkpoints")


def test_make_13_reproduces_the_stored_encoder_of_seed_0():
    spec = importlib.util.spec_from_file_location("make_13", os.path.join(HERE, "make_13.py"))
    make_13 = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_13)
    stored = mc.load(make_13.PATH)
    assert sorted({key.split(":")[0] for key in stored}) == sorted(str(s) for s in make_13.SEEDS)
    made = make_13.state(seeds=(0,))
    assert list(made) == [key for key in stored if key.startswith("0:")]
    different = [key for key, value in made.items()
                 if value.dtype != stored[key].dtype or not np.array_equal(value.numpy(), stored[key].numpy())]
    assert different == []
