"""What data augmentation adds to an epoch of training, as lesson 13 trains.

One epoch over the 3,500 MNIST-5k training images, batch 64, of lesson 13's network (784-256-128-10
MLP with batch norm, Adam), with no transform and with the lesson's augmentation applied by the
``DataLoader`` to each batch; then one epoch of its contrastive pre-training (batch 256, two views
through encoder and projection head, NT-Xent) with two augmented views against two plain copies.
Each augmented epoch is timed twice: geometric transforms through the Numba sampling kernel
(``transforms.affine_sample``, what the library uses) and through the whole-array NumPy version
(``affine_sample_reference``, what it used before). All runs interleave in one process, so the
ratios are fair on a noisy machine. Goal (issue 17): an augmented epoch costs at most 1.5x a plain one.

    python benchmarks/augment.py [--repeats 7]
"""
import argparse

import minitorch_compress as mc  # before NumPy: it sets the thread settings OpenBLAS reads when it loads
from minitorch_compress import nn
from minitorch_compress.contrastive import nt_xent_loss
from minitorch_compress.data import transforms as T

from timing import median_times

# lesson 13's choices
SUPERVISED = T.RandomAffine(10, translate=(0.1, 0.1), scale=(0.9, 1.1))
VIEWS = T.Compose([T.RandomResizedCrop(28, scale=(0.5, 1.0)), T.RandomAffine(15, translate=(0.1, 0.1)),
                   T.RandomErasing(p=0.5, scale=(0.02, 0.15))])
SAMPLERS = {"kernel": T.affine_sample, "NumPy": T.affine_sample_reference}


def encoder():
    return nn.Sequential(nn.Linear(784, 256), nn.BatchNorm1d(256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU())


def supervised_epoch(train_set, transform):
    model = nn.Sequential(encoder(), nn.Linear(128, 10))
    loader = mc.data.DataLoader(train_set, 64, shuffle=True, seed=0,
                                transform=T.Augment(transform, (28, 28)) if transform else None)
    mc.train.fit(model, loader, mc.optim.Adam(model.parameters(), lr=1e-3), progress=False)


def contrastive_epoch(train_set, views):
    net, head = encoder(), nn.Sequential(nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, 64))
    opt = mc.optim.Adam(list(net.parameters()) + list(head.parameters()), lr=1e-3)
    for X, _ in mc.data.DataLoader(train_set, 256, shuffle=True, seed=0, drop_last=True):
        images = X.data.reshape(-1, 28, 28)
        a, b = (views(images), views(images)) if views else (images, images.copy())
        loss = nt_xent_loss(head(net(mc.tensor(a.reshape(-1, 784)))), head(net(mc.tensor(b.reshape(-1, 784)))), 0.2)
        opt.zero_grad()
        loss.backward()
        opt.step()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    train_set, _, _ = mc.data.load_mnist_5k(validation=500)
    mc.manual_seed(0)

    def with_sampler(name, run):
        def timed():
            T.affine_sample = SAMPLERS[name]   # RandomAffine and RandomResizedCrop call it by this name
            try:
                run()
            finally:
                T.affine_sample = SAMPLERS["kernel"]
        return timed

    runs = {
        ("supervised", "plain"): lambda: supervised_epoch(train_set, None),
        ("supervised", "augmented"): with_sampler("kernel", lambda: supervised_epoch(train_set, SUPERVISED)),
        ("supervised", "augmented, NumPy sampler"): with_sampler("NumPy", lambda: supervised_epoch(train_set, SUPERVISED)),
        ("contrastive", "plain"): lambda: contrastive_epoch(train_set, None),
        ("contrastive", "augmented"): with_sampler("kernel", lambda: contrastive_epoch(train_set, VIEWS)),
        ("contrastive", "augmented, NumPy sampler"): with_sampler("NumPy", lambda: contrastive_epoch(train_set, VIEWS)),
    }
    median = dict(zip(runs, median_times(*runs.values(), min_repeats=args.repeats, budget=0)))

    print(f"one epoch over {len(train_set):,} images, {args.repeats} repeats (medians); ratio = time / plain epoch")
    print(f"  supervised: {SUPERVISED!r}, batch 64\n  contrastive: {VIEWS!r}, batch 256, two views")
    for kind in ("supervised", "contrastive"):
        plain = median[(kind, "plain")]
        for (k, name), value in median.items():
            if k == kind:
                print(f"  {kind:12s} {name:26s} {value * 1e3:8.1f} ms   {value / plain:5.2f}x")
    ratio = median[("supervised", "augmented")] / median[("supervised", "plain")]
    print(f"augmented / plain supervised epoch = {ratio:.2f}x   (goal <= 1.5x)")


if __name__ == "__main__":
    main()
