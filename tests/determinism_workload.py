"""A seeded run through every part of the engine; prints a SHA-256 of each result as JSON.

``tests/test_determinism.py`` runs it in subprocesses that emulate other machines (another
Numba target, NumPy without AVX2/AVX-512, another OpenBLAS kernel, 1 or 4 threads) and
demands the same hashes. Small sizes keep a cold compile for a generic CPU affordable.
"""
import hashlib
import json

import numpy as np

import minitorch_compress as mc
from minitorch_compress import functional as F, nn, optim, prune, quant
from minitorch_compress.blocks import BasicBlock
from minitorch_compress.data import DataLoader, load_mnist_5k, transforms
from minitorch_compress.lowrank import factorize_model
from minitorch_compress.sparse import SparseLinear


def digest(*arrays):
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(np.asarray(a))
        h.update(str((a.dtype, a.shape)).encode())
        h.update(a.tobytes())
    return h.hexdigest()[:16]


def params(model):
    return digest(*[p.data for _, p in sorted(model.named_parameters())])


def train(model, loader, opt, steps, loss_fn=F.cross_entropy):
    step = 0
    while step < steps:
        for x, y in loader:
            loss = loss_fn(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
            if step == steps:
                return


def main():
    results = {}
    train_set, test_set = load_mnist_5k()
    x_test = mc.tensor(test_set.X[:256])

    # An MLP with every transcendental in it (sigmoid, tanh, softmax), SGD with momentum, then Adam.
    mc.manual_seed(0)
    mlp = nn.Sequential(nn.Linear(784, 128), nn.Sigmoid(), nn.Linear(128, 64), nn.Tanh(), nn.Linear(64, 10))
    loader = DataLoader(train_set, batch_size=64, shuffle=True)
    train(mlp, loader, optim.SGD(mlp.parameters(), lr=0.1, momentum=0.9), 30)
    train(mlp, loader, optim.Adam(mlp.parameters(), lr=1e-3), 10)
    with mc.no_grad():
        results["mlp params"] = params(mlp)
        results["mlp softmax"] = digest(F.softmax(mlp(x_test), dim=1).data)
        results["low-rank factors"] = params(factorize_model(mlp, 0.9)[0])

    # A small CNN: convolution, pooling, ReLU, a distillation-style KL term.
    mc.manual_seed(1)
    images = train_set.X[:512].reshape(-1, 1, 28, 28)
    cnn = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(8, 8, 3), nn.ReLU(),
                        nn.MaxPool2d(2), nn.Flatten(), nn.Linear(8 * 6 * 6, 10))
    cnn_loader = DataLoader(type(train_set)(images, train_set.y[:512]), batch_size=64, shuffle=True)

    def cnn_loss(logits, y):
        soft = F.log_softmax(logits / 2.0, dim=1)
        return F.cross_entropy(logits, y) + 0.1 * F.kl_div(soft, F.softmax(logits.detach(), dim=1))
    train(cnn, cnn_loader, optim.SGD(cnn.parameters(), lr=0.05, momentum=0.9), 12, cnn_loss)
    results["cnn params"] = params(cnn)

    # Augmentation: rotation (polynomial cos/sin), scale, crop (exp/log of aspect ratios), erasing, noise.
    mc.manual_seed(5)
    jitter = transforms.Compose([transforms.RandomAffine(20, translate=(0.1, 0.1), scale=(0.9, 1.1)),
                                 transforms.RandomResizedCrop(28, scale=(0.6, 1.0)), transforms.RandomErasing(),
                                 transforms.GaussianNoise(sigma=0.05)])
    results["augmented batch"] = digest(jitter(images[:64, 0]))

    # A residual CNN: BatchNorm (batch statistics, running estimates), a depthwise convolution,
    # average and global pooling.
    mc.manual_seed(4)
    resnet = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(), nn.AvgPool2d(2),
                           BasicBlock(8, 8), nn.Conv2d(8, 16, 3, padding=2, dilation=2, groups=8), BasicBlock(16, 16, 2),
                           nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10))
    train(resnet, cnn_loader, optim.SGD(resnet.parameters(), lr=0.05, momentum=0.9), 6)
    with mc.no_grad():
        results["residual cnn"] = digest(*[t.data for _, t in sorted(resnet.state_dict().items())],
                                         resnet.eval()(mc.tensor(images[:64])).data)

    # Pruned and fine-tuned, then run as CSR.
    mc.manual_seed(2)
    lenet = nn.Sequential(nn.Linear(784, 100), nn.ReLU(), nn.Linear(100, 10))
    opt = optim.SGD(lenet.parameters(), lr=0.1, momentum=0.9)
    train(lenet, loader, opt, 30)
    prune.global_unstructured([(lenet[0], "weight"), (lenet[2], "weight")], prune.L1Unstructured, amount=0.8)
    train(lenet, loader, optim.SGD(lenet.parameters(), lr=0.05, momentum=0.9), 20)
    for layer in (lenet[0], lenet[2]):
        prune.remove(layer, "weight")
    results["pruned params"] = params(lenet)
    with mc.no_grad():
        sparse = nn.Sequential(SparseLinear.from_linear(lenet[0]), nn.ReLU(), SparseLinear.from_linear(lenet[2]))
        results["csr outputs"] = digest(sparse(x_test).data)

        # int8: dynamic and static post-training quantization of the fine-tuned network.
        results["dynamic int8 outputs"] = digest(quant.quantize_dynamic(lenet, {nn.Linear})(x_test).data)
        staged = nn.Sequential(quant.QuantStub(), *lenet, quant.DeQuantStub())
        staged.qconfig = quant.default_qconfig
        prepared = quant.prepare(staged)
        prepared(mc.tensor(train_set.X[:500]))
        results["static int8 outputs"] = digest(quant.convert(prepared)(x_test).data)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
