"""Train lesson 15's networks and write them to 15_blocks.npz (one file, all state dicts).

The four networks share a stem and a head and differ only in their two stages' block (standard
convolution, depthwise-separable, fire, inverted residual); each at width multipliers 0.5, 1 and 2.
Width 1 is trained with seeds 0, 1000 and 2000, the other widths with seed 0, except the separable
network at width 2, which the lesson compares with the standard one at width 1 over the three seeds. Every network gets
the same budget: EPOCHS epochs of Adam on 14x14 MNIST-5k (3,500 training images), batch 64; the
validation split is watched, the test split never opened here. Keys: ``name@multiplier@seed:param``.

    python notebooks/checkpoints/make_15.py            # about 20 minutes on 2 cores

Networks already in the file are kept (each is trained from its own seed, independent of the
others); delete the file to train them all again.
tests/test_checkpoints_15_16.py retrains one network and checks it equals the stored one bit for bit.
"""
import os
import sys

import minitorch_compress as mc
from minitorch_compress import search

HERE = os.path.dirname(os.path.abspath(__file__))
PATH = os.path.join(HERE, "15_blocks.npz")
INPUT = (1, 14, 14)
ARCHS = {name: {"stem": 8, "stages": [{"block": block, "width": width, "kernel": 3, "expand": 6}
                                      for width in (16, 32)]}
         for name, block in (("standard", "conv"), ("separable", "separable"), ("fire", "fire"),
                             ("inverted", "inverted"))}
MULTIPLIERS = (0.5, 1.0, 2.0)
SEEDS = (0, 1000, 2000)
EPOCHS, LR, BATCH = 5, 3e-3, 64


def mnist_14():
    """MNIST-5k's 3,500 / 500 / 1,000 split, each image averaged over 2x2 pixels to 14x14."""
    def shrink(d):
        return mc.data.TensorDataset(mc.functional.avg_pool2d(d.X, 2).data, d.y)
    return [shrink(d) for d in mc.data.load_mnist_5k(flatten=False, validation=500)]


def plan():
    """(name, multiplier, seed) of every stored network."""
    return [(name, m, seed) for name in ARCHS for m in MULTIPLIERS
            for seed in (SEEDS if m == 1.0 or (name, m) == ("separable", 2.0) else SEEDS[:1])]


def key(name, multiplier, seed):
    return f"{name}@{multiplier}@{seed}"


def train(name, multiplier, seed, train_set, val_set):
    """A freshly initialised network (seed) trained for the fixed budget; (model, history)."""
    mc.manual_seed(seed)
    model = search.build(search.scale(ARCHS[name], multiplier), INPUT)
    history = mc.train.fit(model, mc.data.DataLoader(train_set, BATCH, shuffle=True, seed=seed + 1),
                           mc.optim.Adam(model.parameters(), lr=LR), epochs=EPOCHS,
                           val_loader=mc.data.DataLoader(val_set, 500), progress=False)
    return model, history


def load(state, name, multiplier, seed):
    """The stored network ``name`` at ``multiplier`` and ``seed``, from ``mc.load(PATH)``."""
    model = search.build(search.scale(ARCHS[name], multiplier), INPUT)
    prefix = key(name, multiplier, seed) + ":"
    model.load_state_dict({k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)})
    return model.eval()


def main(path=PATH):
    train_set, val_set, _ = mnist_14()
    state = dict(mc.load(path)) if os.path.exists(path) else {}
    for name, multiplier, seed in plan():
        if any(k.startswith(key(name, multiplier, seed) + ":") for k in state):
            continue
        model, history = train(name, multiplier, seed, train_set, val_set)
        print(f"{key(name, multiplier, seed)}: val accuracy per epoch "
              + " ".join(f"{a:.3f}" for a in history["val_accuracy"]), flush=True)
        state.update({f"{key(name, multiplier, seed)}:{k}": v for k, v in model.state_dict().items()})
    mc.save(state, path)


if __name__ == "__main__":
    main(*sys.argv[1:])
