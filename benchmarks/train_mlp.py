"""Training throughput of the engine against a hand-written NumPy forward/backward of the same network.

784-256-128-10 MLP, ReLU, cross entropy, plain SGD, batch 128, on random data of MNIST's shape.
Both run in this process, interleaved, so the ratio is fair on a noisy machine.
Goal (issue 2): the engine reaches at least 0.7x the hand-written NumPy throughput.

    python benchmarks/train_mlp.py [--repeats 7] [--steps 50] [--backend numba|numpy]
"""
import argparse

import minitorch_compress as mc  # before NumPy: it sets the thread settings OpenBLAS reads when it loads
from minitorch_compress import functional as F, nn, optim

import numpy as np
from timing import median_times

SIZES = (784, 256, 128, 10)
BATCH = 128


def make_batches(steps):
    rng = np.random.default_rng(0)
    return [(rng.random((BATCH, SIZES[0]), dtype=np.float32), rng.integers(0, 10, BATCH)) for _ in range(steps)]


def engine_epoch(model, opt, batches):
    for x, y in batches:
        loss = F.cross_entropy(model(mc.tensor(x)), mc.tensor(y))
        opt.zero_grad()
        loss.backward()
        opt.step()


def numpy_epoch(weights, batches, lr=0.01):
    """The same step written out by hand: forward, softmax-cross-entropy gradient, backward, SGD."""
    for x, y in batches:
        activations = [x]
        for i, (w, b) in enumerate(weights):
            z = activations[-1] @ w.T + b
            activations.append(np.maximum(z, 0) if i < len(weights) - 1 else z)
        logits = activations[-1]
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        p[np.arange(len(y)), y] -= 1
        g = p / len(y)
        for i in reversed(range(len(weights))):
            w, b = weights[i]
            grad_w, grad_b = g.T @ activations[i], g.sum(axis=0)
            if i:
                g = (g @ w) * (activations[i] > 0)
            w -= lr * grad_w
            b -= lr * grad_b


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--backend", choices=mc.backend.BACKENDS, default=mc.get_backend(),
                        help="the engine's products: our kernel (the default) or OpenBLAS")
    args = parser.parse_args()
    mc.set_backend(args.backend)

    mc.manual_seed(0)
    model = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(), nn.Linear(128, 10))
    opt = optim.SGD(model.parameters(), lr=0.01)
    weights = [(m.weight.data.copy(), m.bias.data.copy()) for m in model if isinstance(m, nn.Linear)]
    batches = make_batches(args.steps)
    samples = args.steps * BATCH

    runs = {"engine": lambda: engine_epoch(model, opt, batches), "hand-written numpy": lambda: numpy_epoch(weights, batches)}
    median = dict(zip(runs, median_times(*runs.values(), min_repeats=args.repeats, budget=0)))

    print(f"784-256-128-10 MLP, batch {BATCH}, {args.steps} steps x {args.repeats} repeats (medians), "
          f"engine backend {args.backend!r}")
    throughput = {name: samples / seconds for name, seconds in median.items()}
    for name, value in throughput.items():
        print(f"  {name:20s} {value:10,.0f} samples/s")
    ratio = throughput["engine"] / throughput["hand-written numpy"]
    print(f"  engine / hand-written numpy = {ratio:.2f}x   (goal >= 0.70x)")


if __name__ == "__main__":
    main()
