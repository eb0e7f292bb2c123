"""Pre-train lesson 13's encoders without labels (SimCLR) and write them to 13_simclr.npz.

For each seed 0, 1000 and 2000: an encoder 784-256-128 (batch norm after the first layer, ReLU) and a
projection head 128-128-64 learn from the 3,500 MNIST-5k training images, labels unused, for EPOCHS
epochs of Adam: each batch of 256 images is augmented twice (VIEWS) and NT-Xent at TEMPERATURE asks
each view to find its partner among the 511 other views. Only the encoder is kept (SimCLR drops
the head after pre-training). The validation and test splits are never read. Keys: ``seed:param``.

    python notebooks/checkpoints/make_13.py            # about a minute on a quiet 2-core machine

tests/test_checkpoint_13.py pre-trains seed 0 again and checks it equals the stored encoder bit for bit.
"""
import os
import sys

import minitorch_compress as mc
from minitorch_compress import nn
from minitorch_compress.contrastive import NTXentLoss, TwoViews
from minitorch_compress.data import transforms as T

HERE = os.path.dirname(os.path.abspath(__file__))
PATH = os.path.join(HERE, "13_simclr.npz")
SEEDS = (0, 1000, 2000)
EPOCHS, BATCH, LR, TEMPERATURE = 80, 256, 1e-3, 0.2
VIEWS = T.Compose([T.RandomResizedCrop(28, scale=(0.5, 1.0)), T.RandomAffine(15, translate=(0.1, 0.1)),
                   T.RandomErasing(p=0.5, scale=(0.02, 0.15))])


def encoder():
    return nn.Sequential(nn.Linear(784, 256), nn.BatchNorm1d(256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU())


def pretrain(seed, train_set, epochs=EPOCHS):
    """An encoder pre-trained from a fresh initialisation (seed); (encoder, history)."""
    mc.manual_seed(seed)
    net, head = encoder(), nn.Sequential(nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, 64))
    loader = mc.data.DataLoader(train_set, BATCH, shuffle=True, seed=seed, drop_last=True,
                                transform=TwoViews(VIEWS, (28, 28)))
    model = nn.Sequential(net, head)
    history = mc.train.fit(model, loader, mc.optim.Adam(model.parameters(), lr=LR),
                           loss_fn=NTXentLoss(TEMPERATURE), epochs=epochs, progress=False)
    return net.eval(), history


def state(seeds=SEEDS):
    """The stored mapping: every seed's pre-trained encoder."""
    train_set, _, _ = mc.data.load_mnist_5k(validation=500)
    out = {}
    for seed in seeds:
        net, history = pretrain(seed, train_set)
        print(f"seed {seed}: NT-Xent {history['loss'][0]:.3f} -> {history['loss'][-1]:.3f}", flush=True)
        out.update({f"{seed}:{name}": value for name, value in net.state_dict().items()})
    return out


if __name__ == "__main__":
    mc.save(state(), sys.argv[1] if len(sys.argv) > 1 else PATH)
