"""Reproduced result: LeNet-300-100 on MNIST-5k keeps its accuracy at 90% weight sparsity.

Han et al. (2015) prune LeNet-300-100 12x on full MNIST with no accuracy loss. Here: train dense,
then fine-tune two copies for the same number of epochs, one dense and one pruned gradually (AGP,
Zhu & Gupta 2017) to 90% of every layer's weights; the pruned one must stay within 1.5 points.
"""
import copy

import minitorch_compress as mc
from minitorch_compress import nn, prune
from minitorch_compress.data import DataLoader, load_mnist_5k
from minitorch_compress.train import evaluate, fit


def test_lenet_300_100_pruned_to_90_percent_with_agp_stays_within_1_5_points():
    mc.manual_seed(0)
    train, test = load_mnist_5k()
    loader, test_loader = DataLoader(train, 64, shuffle=True, seed=0), DataLoader(test, 1000)
    model = nn.Sequential(nn.Linear(784, 300), nn.ReLU(), nn.Linear(300, 100), nn.ReLU(), nn.Linear(100, 10))
    fit(model, loader, mc.optim.SGD(model.parameters(), lr=0.1, momentum=0.9), epochs=8, progress=False)

    def fine_tune(net, callbacks=()):   # the same 6 epochs of batches for both
        fit(net, DataLoader(train, 64, shuffle=True, seed=1), mc.optim.SGD(net.parameters(), lr=0.05, momentum=0.9),
            epochs=6, callbacks=callbacks, progress=False)
        return evaluate(net, test_loader).accuracy

    dense = fine_tune(copy.deepcopy(model))
    pruned_model = copy.deepcopy(model)
    steps = len(loader)
    agp = prune.AGP(0.0, 0.9, begin_step=0, end_step=4 * steps, frequency=steps // 3)   # pruned in 4 epochs of 6
    pruned = fine_tune(pruned_model, [prune.Pruner(agp)])

    assert prune.weight_sparsity(pruned_model) >= 0.9
    assert dense > 0.9
    assert pruned >= dense - 0.015, f"pruned {pruned:.3f} vs dense {dense:.3f}"
