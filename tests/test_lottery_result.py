"""Reproduced result: lottery tickets in LeNet-300-100 on MNIST-5k (Frankle & Carbin 2019, figure 3).

Iterative magnitude pruning, rewinding to the initialisation, SGD (lr 0.1, momentum 0.9, batch 64)
for the same 5 epochs in every round. Frankle & Carbin prune 20% per round (the output layer
10%); to reach 90% sparsity in 4 rounds instead of 11 we prune 50% per round (the output layer
25%): 93.6% of the weights are pruned after round 4. Over 3 seeds:

- the tickets at 87% and 94% sparsity reach the dense network's accuracy within 1 point;
- at 94% sparsity the tickets beat the same masks on a fresh random initialisation.
"""
import numpy as np
import pytest

import minitorch_compress as mc
from minitorch_compress import lottery, nn, optim
from minitorch_compress.data import DataLoader, load_mnist_5k
from minitorch_compress.train import evaluate, fit

SEEDS = (0, 1, 2)
ROUNDS = 4
RATES = {"0": 0.5, "2": 0.5, "4": 0.25}


def lenet_300_100():
    return nn.Sequential(nn.Linear(784, 300), nn.ReLU(), nn.Linear(300, 100), nn.ReLU(), nn.Linear(100, 10))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Per seed: the search's record, and the random-reinit control at the last round."""
    train_set, test_set = load_mnist_5k()
    test_loader = DataLoader(test_set, 1000)

    def train(model, callbacks):
        fit(model, DataLoader(train_set, 64, shuffle=True, seed=1), optim.SGD(model.parameters(), lr=0.1, momentum=0.9),
            epochs=5, callbacks=callbacks, progress=False)

    def accuracy(model):
        return evaluate(model, test_loader).accuracy

    results = []
    for seed in SEEDS:
        mc.manual_seed(seed)
        imp = lottery.IterativeMagnitudePruning(lenet_300_100, train, accuracy, tmp_path_factory.mktemp(f"seed{seed}"),
                                                rate=RATES)
        record = imp.run(ROUNDS, controls=False)
        control = lottery.reinitialized(lenet_300_100, imp.masks(ROUNDS))
        train(control, [])
        results.append((record, accuracy(control)))
    return results


def mean_over_seeds(runs, column):
    return np.mean([record.column(column) for record, _ in runs], axis=0)


def test_tickets_at_80_percent_sparsity_or_more_match_the_dense_network(runs):
    remaining, ticket = mean_over_seeds(runs, "remaining"), mean_over_seeds(runs, "ticket")
    sparse = [r for r in range(1, ROUNDS + 1) if remaining[r] <= 0.2]
    assert sparse == [3, 4], remaining
    for r in sparse:
        assert ticket[r] >= ticket[0] - 0.01, f"round {r}: ticket {ticket[r]:.4f} vs dense {ticket[0]:.4f}"


def test_tickets_at_90_percent_sparsity_beat_random_reinitialisation(runs):
    remaining = mean_over_seeds(runs, "remaining")[ROUNDS]
    ticket = mean_over_seeds(runs, "ticket")[ROUNDS]
    reinit = np.mean([control for _, control in runs])
    assert remaining <= 0.1
    assert ticket > reinit, f"ticket {ticket:.4f} vs reinit {reinit:.4f} at {remaining:.1%} remaining"
