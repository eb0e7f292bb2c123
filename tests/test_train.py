"""The training loop, and the engine's reproduced results on the bundled data."""
import numpy as np

import minitorch_compress as mc
from minitorch_compress import data, nn, optim
from minitorch_compress.train import evaluate, fit


def test_mlp_784_100_10_reaches_91_percent_on_mnist_5k():
    mc.manual_seed(0)
    train, test = data.load_mnist_5k()
    model = nn.Sequential(nn.Linear(784, 100), nn.ReLU(), nn.Linear(100, 10))
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    history = fit(model, data.DataLoader(train, 64, shuffle=True, seed=0), opt, epochs=10, progress=False)
    assert history["loss"][-1] < history["loss"][0]
    result = evaluate(model, data.DataLoader(test, 500))
    assert result.accuracy >= 0.91, result


def test_small_cnn_reaches_95_percent_on_digits():
    mc.manual_seed(0)
    train, test = data.load_digits(flatten=False)
    model = nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64, 10))
    opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    fit(model, data.DataLoader(train, 32, shuffle=True, seed=0), opt, epochs=8, progress=False)
    assert evaluate(model, data.DataLoader(test, 360)).accuracy >= 0.95


class Recorder:
    def __init__(self):
        self.events = []

    def on_train_begin(self, model):
        self.events.append("begin")

    def on_after_backward(self, model, step):
        assert all(p.grad is not None for p in model.parameters())
        self.events.append(("backward", step))

    def on_batch_end(self, model, step, loss):
        self.events.append(("batch", step))

    def on_epoch_end(self, model, epoch, history):
        self.events.append(("epoch", epoch, len(history["loss"])))


def test_fit_calls_callbacks_in_order_and_records_history():
    mc.manual_seed(0)
    ds = data.TensorDataset(np.random.default_rng(0).standard_normal((10, 3)).astype(np.float32), np.arange(10) % 2)
    model = nn.Sequential(nn.Linear(3, 2))
    recorder = Recorder()
    history = fit(model, data.DataLoader(ds, 5), optim.SGD(model.parameters(), lr=0.1), epochs=2,
                  val_loader=data.DataLoader(ds, 10), callbacks=[recorder], progress=False)
    assert recorder.events == ["begin", ("backward", 0), ("batch", 0), ("backward", 1), ("batch", 1), ("epoch", 0, 1),
                               ("backward", 2), ("batch", 2), ("backward", 3), ("batch", 3), ("epoch", 1, 2)]
    assert set(history) == {"loss", "val_accuracy", "val_loss"} and len(history["val_accuracy"]) == 2


def test_evaluate_restores_the_training_mode():
    model = nn.Sequential(nn.Linear(3, 2), nn.Dropout(0.5))
    ds = data.TensorDataset(np.zeros((4, 3), dtype=np.float32), np.zeros(4, dtype=np.int64))
    model.train()
    evaluate(model, data.DataLoader(ds, 2))
    assert model.training and model[1].training
    model.eval()
    evaluate(model, data.DataLoader(ds, 2))
    assert not model.training
