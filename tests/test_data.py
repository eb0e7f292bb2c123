"""Data: bundled data sets, deterministic splits, IDX files, the DataLoader."""
import gzip

import numpy as np
import pytest

import minitorch_compress as mc
from minitorch_compress import data


def test_mnist_5k_split_is_fixed_and_scaled():
    mc.manual_seed(123)  # the split must not depend on the package seed
    train, test = data.load_mnist_5k()
    assert train.X.shape == (4000, 784) and test.X.shape == (1000, 784)
    assert train.X.dtype == np.float32 and train.y.dtype == np.int64
    assert 0.0 <= train.X.min() and train.X.max() == 1.0
    assert set(np.unique(test.y)) == set(range(10))
    mc.manual_seed(0)
    train2, test2 = data.load_mnist_5k(flatten=False)
    assert train2.X.shape == (4000, 1, 28, 28)
    np.testing.assert_array_equal(test2.X.reshape(1000, -1), test.X)
    np.testing.assert_array_equal(train2.y, train.y)


def test_digits():
    train, test = data.load_digits(flatten=False)
    assert train.X.shape == (1437, 1, 8, 8) and len(test) == 360
    assert train.X.max() == 1.0 and test.y.dtype == np.int64


def write_idx(path, array, code):
    header = bytes([0, 0, code, array.ndim]) + np.array(array.shape, dtype=">u4").tobytes()
    payload = header + array.astype(array.dtype.newbyteorder(">")).tobytes()
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wb") as f:
        f.write(payload)


def test_load_idx_reads_images_and_labels(tmp_path):
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    labels = np.array([7, 1], dtype=np.uint8)
    floats = np.array([[1.5, -2.0]], dtype=np.float32)
    write_idx(tmp_path / "images-idx3-ubyte", images, 0x08)
    write_idx(tmp_path / "labels-idx1-ubyte.gz", labels, 0x08)
    write_idx(tmp_path / "floats.idx", floats, 0x0D)
    np.testing.assert_array_equal(data.load_idx(tmp_path / "images-idx3-ubyte"), images)
    np.testing.assert_array_equal(data.load_idx(str(tmp_path / "labels-idx1-ubyte.gz")), labels)
    np.testing.assert_array_equal(data.load_idx(tmp_path / "floats.idx"), floats)


def test_load_idx_rejects_bad_files(tmp_path):
    (tmp_path / "bad").write_bytes(b"\x01\x02\x08\x01rest")
    with pytest.raises(ValueError, match="magic"):
        data.load_idx(tmp_path / "bad")
    write_idx(tmp_path / "short", np.zeros((4, 4), dtype=np.uint8), 0x08)
    (tmp_path / "short").write_bytes((tmp_path / "short").read_bytes()[:-3])
    with pytest.raises(ValueError, match=r"shape \(4, 4\)"):
        data.load_idx(tmp_path / "short")


def test_dataloader_batches_cover_the_data_and_shuffle_reproducibly():
    ds = data.TensorDataset(np.arange(10, dtype=np.float32).reshape(10, 1), np.arange(10))
    batches = list(data.DataLoader(ds, batch_size=4))
    assert [len(x) for x, _ in batches] == [4, 4, 2]
    assert isinstance(batches[0][0], mc.Tensor) and batches[0][1].dtype.kind == "i"
    assert len(data.DataLoader(ds, 4, drop_last=True)) == 2

    def epoch(loader):
        return np.concatenate([y.data for _, y in loader])
    a, b = data.DataLoader(ds, 3, shuffle=True, seed=5), data.DataLoader(ds, 3, shuffle=True, seed=5)
    first = epoch(a)
    assert sorted(first) == list(range(10)) and not np.array_equal(first, np.arange(10))
    np.testing.assert_array_equal(first, epoch(b))
    assert not np.array_equal(epoch(a), first)  # a new order every epoch
    mc.manual_seed(1)
    c = epoch(data.DataLoader(ds, 3, shuffle=True))
    mc.manual_seed(1)
    np.testing.assert_array_equal(c, epoch(data.DataLoader(ds, 3, shuffle=True)))


def test_dataloader_and_dataset_errors():
    with pytest.raises(ValueError, match="batch_size"):
        data.DataLoader(data.TensorDataset(np.zeros((2, 1)), np.zeros(2)), batch_size=0)
    with pytest.raises(ValueError, match="3 examples but y has 2"):
        data.TensorDataset(np.zeros((3, 1)), np.zeros(2))


@pytest.mark.parametrize("loader, sizes", [(data.load_mnist_5k, (3500, 500, 1000)), (data.load_digits, (1237, 200, 360))])
def test_validation_split_is_fixed_and_held_out_of_train(loader, sizes):
    train_all, test_all = loader()
    mc.manual_seed(7)   # the split must not depend on the package seed
    n_val = sizes[1]
    train, val, test = loader(validation=n_val)
    assert (len(train), len(val), len(test)) == sizes
    np.testing.assert_array_equal(test.X, test_all.X)
    rows = lambda X: {x.tobytes() for x in X.reshape(len(X), -1)}
    assert rows(train.X) | rows(val.X) == rows(train_all.X) and not rows(train.X) & rows(val.X)
    mc.manual_seed(8)
    again = loader(validation=n_val)
    np.testing.assert_array_equal(again[1].X, val.X)
    np.testing.assert_array_equal(again[1].y, val.y)


def test_validation_size_errors():
    for bad in (-1, 0.1, True):
        with pytest.raises(ValueError, match=f"validation must be a non-negative int, got {bad!r}"):
            data.load_mnist_5k(validation=bad)
    data.load_mnist_5k(validation=np.int64(0))  # a NumPy integer is an integer
    with pytest.raises(ValueError, match="validation=4000 leaves none of the 4000"):
        data.load_mnist_5k(validation=4000)
