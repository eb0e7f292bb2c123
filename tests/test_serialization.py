"""save/load: round trips, atomic writes, and loading never runs code."""
import os

import numpy as np
import pytest

import minitorch_compress as mc
from minitorch_compress import nn


def test_state_dict_round_trip_keeps_values_dtypes_and_order(tmp_path):
    mc.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    model[0].register_buffer("codes", mc.tensor(np.array([-128, 0, 127], dtype=np.int8)))
    path = tmp_path / "model.npz"
    mc.save(model.state_dict(), path)
    loaded = mc.load(path)
    assert list(loaded) == list(model.state_dict())
    assert loaded["0.codes"].dtype == np.int8
    mc.manual_seed(1)
    fresh = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    fresh[0].register_buffer("codes", mc.zeros(3, dtype=np.int8))
    fresh.load_state_dict(loaded)
    x = mc.randn(5, 3)
    np.testing.assert_array_equal(fresh(x).data, model(x).data)


def test_a_crash_mid_write_leaves_the_old_file_intact(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.npz"
    mc.save({"w": mc.ones(2)}, path)

    def crash(f, **arrays):
        f.write(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", crash)
    with pytest.raises(KeyboardInterrupt):
        mc.save({"w": mc.zeros(2)}, path)
    monkeypatch.undo()
    np.testing.assert_array_equal(mc.load(path)["w"].data, [1, 1])
    assert os.listdir(tmp_path) == ["ckpt.npz"]


def test_corrupt_or_pickled_files_raise_a_clear_error(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip file at all")
    with pytest.raises(ValueError, match="bad.npz"):
        mc.load(bad)
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, obj=np.array([{"run": "code"}], dtype=object))
    with pytest.raises(ValueError, match="pickled.npz"):
        mc.load(pickled)
    with pytest.raises(FileNotFoundError):
        mc.load(tmp_path / "missing.npz")


def test_save_rejects_what_it_cannot_store(tmp_path):
    with pytest.raises(TypeError, match="mapping"):
        mc.save([1, 2], tmp_path / "x.npz")
    with pytest.raises(ValueError, match="'a/b'"):
        mc.save({"a/b": mc.ones(1)}, tmp_path / "x.npz")
