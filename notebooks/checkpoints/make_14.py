"""Train lesson 14's dense CNN and write it to 14_vgg.npz (one file, one state dict per seed).

A small VGG-style network with BatchNorm (three 3x3 convolutions of 8, 16 and 32 channels, each
followed by BatchNorm and ReLU, max pooling after the last two, a Linear classifier) on MNIST-5k
averaged to 14x14 pixels: the 3,500 training images, the 500 validation images watched, the test
split never opened here. Seeds 0, 1000 and 2000, each with the same budget: EPOCHS epochs of SGD
with momentum, batch 64. Keys: ``seed:param``.

    python notebooks/checkpoints/make_14.py            # about a minute on 2 quiet cores
tests/test_checkpoint_14.py retrains seed 0 and checks it equals the stored network bit for bit.
"""
import os
import sys

import minitorch_compress as mc
from minitorch_compress import nn

HERE = os.path.dirname(os.path.abspath(__file__))
PATH = os.path.join(HERE, "14_vgg.npz")
SEEDS = (0, 1000, 2000)
EPOCHS, LR, MOMENTUM, BATCH = 5, 0.05, 0.9, 64


def mnist_14():
    """MNIST-5k's 3,500 / 500 / 1,000 split, each image averaged over 2x2 pixels to 14x14."""
    def shrink(d):
        return mc.data.TensorDataset(mc.functional.avg_pool2d(d.X, 2).data, d.y)
    return [shrink(d) for d in mc.data.load_mnist_5k(flatten=False, validation=500)]


def vgg(widths=(8, 16, 32)):
    """Conv-BN-ReLU three times (14x14, then 7x7 and 3x3 after max pooling), then a Linear classifier."""
    c1, c2, c3 = widths
    return nn.Sequential(
        nn.Conv2d(1, c1, 3, padding=1, bias=False), nn.BatchNorm2d(c1), nn.ReLU(),
        nn.Conv2d(c1, c2, 3, padding=1, bias=False), nn.BatchNorm2d(c2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(c2, c3, 3, padding=1, bias=False), nn.BatchNorm2d(c3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(c3 * 3 * 3, 10))


def train(seed, train_set, val_set):
    """A freshly initialised network (seed) trained for the fixed budget; (model, history)."""
    mc.manual_seed(seed)
    model = vgg()
    history = mc.train.fit(model, mc.data.DataLoader(train_set, BATCH, shuffle=True, seed=seed + 1),
                           mc.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM), epochs=EPOCHS,
                           val_loader=mc.data.DataLoader(val_set, 500), progress=False)
    return model, history


def load(state, seed):
    """The stored network of ``seed``, from ``mc.load(PATH)``, in eval mode."""
    model = vgg()
    prefix = f"{seed}:"
    model.load_state_dict({k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)})
    return model.eval()


def main(path=PATH, seeds=SEEDS):
    train_set, val_set, _ = mnist_14()
    state = {}
    for seed in seeds:
        model, history = train(seed, train_set, val_set)
        print(f"seed {seed}: val accuracy per epoch " + " ".join(f"{a:.3f}" for a in history["val_accuracy"]),
              flush=True)
        state.update({f"{seed}:{k}": v for k, v in model.state_dict().items()})
    mc.save(state, path)


if __name__ == "__main__":
    main(*sys.argv[1:])
