"""Augmentations, the labelled subset and the NT-Xent loss of contrastive learning."""
import numpy as np
import pytest

import minitorch_compress as mc
from minitorch_compress import data
from minitorch_compress.contrastive import NTXentLoss, TwoViews, nt_xent_loss
from minitorch_compress.data import transforms as T
from minitorch_compress.gradcheck import gradcheck


def digits(n=6, channels=None, seed=0):
    rng = np.random.default_rng(seed)
    shape = (n, 9, 9) if channels is None else (n, channels, 9, 9)
    return rng.random(shape).astype(np.float32)


def test_cos_sin_match_numpy():
    angles = np.linspace(-360, 360, 2001)
    cos, sin = T.cos_sin(angles)
    np.testing.assert_allclose(cos, np.cos(np.radians(angles)), atol=2e-15)
    np.testing.assert_allclose(sin, np.sin(np.radians(angles)), atol=2e-15)


def test_rotation_by_90_degrees_is_rot90_counter_clockwise():
    x = digits()
    np.testing.assert_allclose(T.RandomAffine(degrees=(90, 90))(x), np.rot90(x, 1, axes=(1, 2)), atol=1e-6)
    np.testing.assert_allclose(T.RandomRotation((-90, -90))(x), np.rot90(x, -1, axes=(1, 2)), atol=1e-6)
    np.testing.assert_array_equal(T.RandomAffine(0)(x), x)   # the identity, exactly


def test_scaling_about_the_centre():
    x = digits(channels=2)
    zoomed = T.RandomAffine(0, scale=(2.0, 2.0))(x)
    np.testing.assert_allclose(zoomed[..., 4, 4], x[..., 4, 4], atol=1e-6)        # the centre stays
    np.testing.assert_allclose(zoomed[..., 4, 6], x[..., 4, 5], atol=1e-6)        # 2 px out = 1 px in
    shrunk = T.RandomAffine(0, scale=(0.5, 0.5))(x)
    assert np.all(shrunk[..., 0, :] == 0)   # the border now samples outside the image


def test_affine_sample_kernel_matches_numpy_and_its_python_twin_bit_for_bit():
    rng = np.random.default_rng(0)
    for dtype in (np.float32, np.float64):
        for shape, size in (((5, 9, 9), None), ((4, 3, 9, 9), (6, 11)), ((1, 1, 2, 2), (3, 3))):
            x = rng.random(shape).astype(dtype)
            matrix = rng.uniform(-2, 2, (shape[0], 2, 3))
            matrix[..., 2] *= 8   # many samples fall outside the image, some far outside
            out = T.affine_sample(x, matrix, size, fill=0.25)
            expected = T.affine_sample_reference(x, matrix, size, fill=0.25)
            assert out.dtype == dtype and out.shape == expected.shape
            np.testing.assert_array_equal(out, expected)
            planes = x.reshape(shape[0], -1, *shape[-2:])
            twin = np.empty(planes.shape[:2] + out.shape[-2:], dtype)
            T._affine_sample.py_func(planes, matrix, dtype(0.25), twin)
            np.testing.assert_array_equal(twin.reshape(out.shape), out)
    # a pure translation by whole pixels moves pixels exactly, and brings fill in
    x = digits(2)
    shift = np.array([[[1, 0, -2], [0, 1, 1]]] * 2, float)   # output (i, j) reads input (i - 2, j + 1)
    out = T.affine_sample(x, shift, fill=-1.0)
    np.testing.assert_array_equal(out[:, 2:, :-1], x[:, :-2, 1:])
    assert np.all(out[:, :2] == -1) and np.all(out[:, :, -1] == -1)
    with pytest.raises(ValueError, match=r"\(2, 2, 3\)"):
        T.affine_sample(x, np.zeros((1, 2, 3)))


def test_transforms_keep_shape_and_dtype_and_follow_the_seed():
    for transform in (T.RandomAffine(15, translate=(0.1, 0.1), scale=(0.9, 1.1)), T.RandomShift(2),
                      T.RandomResizedCrop(9, scale=(0.5, 1.0)), T.GaussianNoise(sigma=0.1), T.RandomErasing(p=1.0)):
        for x in (digits(), digits(channels=3)):
            mc.manual_seed(7)
            out = transform(x)
            assert out.shape == x.shape and out.dtype == np.float32, transform
            mc.manual_seed(7)
            np.testing.assert_array_equal(transform(x), out)
            assert not np.array_equal(transform(x), out)   # the next draw differs
    with pytest.raises(ValueError, match="float images"):
        T.RandomShift(1)(np.zeros((2, 3), np.float32))


def test_shift_moves_whole_pixels_with_zeros_coming_in():
    x = digits(20)
    mc.manual_seed(3)
    out = T.RandomShift(2)(x)
    mc.manual_seed(3)
    dr, dc = mc.get_rng().integers(-2, 3, (2, 20))
    for k in range(20):
        expected = np.zeros_like(x[k])
        rows, cols = slice(max(dr[k], 0), 9 + min(dr[k], 0)), slice(max(dc[k], 0), 9 + min(dc[k], 0))
        expected[rows, cols] = x[k][max(-dr[k], 0):9 - max(dr[k], 0), max(-dc[k], 0):9 - max(dc[k], 0)]
        np.testing.assert_array_equal(out[k], expected)


def test_resized_crop_of_the_whole_image_is_the_identity():
    x = digits()
    np.testing.assert_allclose(T.RandomResizedCrop(9, scale=(1.0, 1.0), ratio=(1.0, 1.0))(x), x, atol=1e-6)
    assert T.RandomResizedCrop((4, 5))(x).shape == (6, 4, 5)


def test_noise_and_erasing():
    x = np.full((50, 9, 9), 0.5, np.float32)
    noisy = T.GaussianNoise(sigma=0.1, clip=False)(x)
    assert abs((noisy - x).std() - 0.1) < 0.01 and abs((noisy - x).mean()) < 0.01
    assert T.GaussianNoise(sigma=5.0)(x).min() >= 0 and T.GaussianNoise(sigma=5.0)(x).max() <= 1
    erased = T.RandomErasing(p=1.0, scale=(0.1, 0.2), value=0.0)(x)
    for image in erased:
        rows, cols = np.nonzero(image == 0)
        box = (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)
        assert box == len(rows) and 0.02 * 81 <= box <= 0.4 * 81   # one rectangle, about the asked area
    np.testing.assert_array_equal(T.RandomErasing(p=0.0)(x), x)


def test_augment_in_a_data_loader():
    train, _ = data.load_digits()
    jitter = T.Compose([T.RandomAffine(10, translate=(0.1, 0.1)), T.GaussianNoise(sigma=0.05)])
    loader = data.DataLoader(train, batch_size=32, transform=T.Augment(jitter, (8, 8)))
    X, y = next(iter(loader))
    assert X.shape == (32, 64) and X.dtype == np.float32
    np.testing.assert_array_equal(y.data, train.y[:32])
    assert not np.array_equal(X.data, train.X[:32])


def test_labelled_subset():
    train, val, _ = data.load_mnist_5k(validation=500)
    labelled, unlabelled = data.labelled_subset(train, 10, seed=0)
    assert np.array_equal(np.bincount(labelled.y), np.full(10, 10))
    assert len(labelled) + len(unlabelled) == len(train)
    rows = {row.tobytes() for row in train.X}
    assert {row.tobytes() for row in labelled.X} <= rows and not ({r.tobytes() for r in labelled.X} & {r.tobytes() for r in val.X})
    assert np.array_equal(data.labelled_subset(train, 10, seed=0)[0].X, labelled.X)
    assert not np.array_equal(data.labelled_subset(train, 10, seed=1)[0].X, labelled.X)
    with pytest.raises(ValueError, match="fewer than"):
        data.labelled_subset(train, 1000)


def nt_xent_by_hand(z1, z2, t):
    z = np.concatenate([z1, z2]).astype(np.float64)
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    n, total = len(z1), 0.0
    for i in range(2 * n):
        partner = (i + n) % (2 * n)
        others = [np.exp(z[i] @ z[k] / t) for k in range(2 * n) if k != i]
        total += -np.log(np.exp(z[i] @ z[partner] / t) / sum(others))
    return total / (2 * n)


def test_nt_xent_value_gradient_and_temperature():
    rng = np.random.default_rng(0)
    z1, z2 = rng.standard_normal((5, 3)), rng.standard_normal((5, 3))
    for t in (0.1, 0.5, 2.0):
        assert np.isclose(nt_xent_loss(mc.tensor(z1, dtype=np.float64), mc.tensor(z2, dtype=np.float64), t).item(),
                          nt_xent_by_hand(z1, z2, t), rtol=1e-10)
    a, b = mc.tensor(z1, requires_grad=True, dtype=np.float64), mc.tensor(z2, requires_grad=True, dtype=np.float64)
    assert gradcheck(lambda a, b: nt_xent_loss(a, b, 0.3), [a, b])
    # identical views of orthogonal points: the partner wins ever more surely as t falls, and at a
    # high temperature every candidate looks alike: the loss tends to log(2N - 1)
    eye = mc.tensor(np.eye(4), dtype=np.float64)
    losses = [nt_xent_loss(eye, eye, t).item() for t in (1.0, 0.3, 0.1)]
    assert losses[0] > losses[1] > losses[2] > 0 and losses[2] < 1e-3
    assert np.isclose(nt_xent_loss(eye, eye, 1e4).item(), np.log(7), rtol=1e-3)
    with pytest.raises(ValueError, match="temperature"):
        nt_xent_loss(eye, eye, 0.0)
    with pytest.raises(ValueError, match="N >= 2"):
        nt_xent_loss(eye[:1], eye[:1])


def test_two_views_and_the_stacked_loss_drive_fit():
    train, _ = data.load_digits()
    views = TwoViews(T.RandomAffine(10, translate=(0.1, 0.1)), (8, 8))
    X, y = next(iter(data.DataLoader(train, 16, transform=views)))
    assert X.shape == (32, 64) and X.dtype == np.float32 and np.array_equal(y.data, np.tile(train.y[:16], 2))
    assert not np.array_equal(X.data[:16], X.data[16:])           # two different draws
    assert np.all(np.abs(X.data[:16].sum(1) - train.X[:16].sum(1)) < 0.5 * train.X[:16].sum(1))   # of the same digits
    rng = np.random.default_rng(1)
    z = rng.standard_normal((8, 3))
    loss = NTXentLoss(0.3)(mc.tensor(z, dtype=np.float64), mc.tensor(np.zeros(8, np.int64)))
    assert np.isclose(loss.item(), nt_xent_by_hand(z[:4], z[4:], 0.3), rtol=1e-10)
    assert gradcheck(lambda a: NTXentLoss(0.3)(a), [mc.tensor(z, requires_grad=True, dtype=np.float64)])
    with pytest.raises(ValueError, match="two stacked views"):
        NTXentLoss()(mc.tensor(z[:7]))
    with pytest.raises(ValueError, match="temperature"):
        NTXentLoss(-1.0)
    # a few steps of pre-training through fit lower the loss
    mc.manual_seed(0)
    model = mc.nn.Sequential(mc.nn.Linear(64, 32), mc.nn.ReLU(), mc.nn.Linear(32, 16))
    history = mc.train.fit(model, data.DataLoader(train, 128, shuffle=True, seed=0, drop_last=True, transform=views),
                           mc.optim.Adam(model.parameters(), lr=1e-2), loss_fn=NTXentLoss(0.5), epochs=4, progress=False)
    assert history["loss"][-1] < history["loss"][0] - 0.3


def test_transform_arguments_are_checked_alike():
    # validation.py's rules: NumPy numbers accepted, bools and out-of-range values rejected
    assert T.RandomAffine(np.float32(10)).degrees == (-10.0, 10.0)
    with pytest.raises(ValueError, match="degrees must be a finite number >= 0, got -5"):
        T.RandomAffine(-5)
    with pytest.raises(ValueError, match="degrees must be a finite number >= 0, got True"):
        T.RandomAffine(True)
    with pytest.raises(ValueError, match=r"sigma must be a finite number >= 0, got -0.1"):
        T.GaussianNoise(sigma=-0.1)
    with pytest.raises(ValueError, match=r"p must be a finite number in \[0, 1\], got 1.5"):
        T.RandomErasing(p=1.5)
    assert T.RandomErasing(p=np.float64(0.25)).p == 0.25
