"""The training loop the lessons use: ``fit`` and ``evaluate``.

``fit`` calls optional methods on each callback object at fixed points, so tools such as a
gradual pruner plug in without their own loop:

- ``on_train_begin(model)``
- ``on_after_backward(model, step)``: gradients are filled, the optimizer has not stepped
- ``on_batch_end(model, step, loss)``: after the optimizer step
- ``on_epoch_end(model, epoch, history)``

``step`` counts optimizer steps from 0 over the whole run.
"""
from collections import namedtuple

from tqdm.auto import tqdm

from . import functional as F
from .tensor import no_grad
from .validation import check_non_negative

Evaluation = namedtuple("Evaluation", ["accuracy", "loss"])


def _call(callbacks, name, *args):
    for callback in callbacks:
        method = getattr(callback, name, None)
        if method is not None:
            method(*args)


def fit(model, loader, optimizer, loss_fn=F.cross_entropy, epochs=1, val_loader=None, callbacks=(), progress=True):
    """Train ``model`` for ``epochs`` passes over ``loader``.

    Returns a history dict of per-epoch lists: ``loss`` (mean training loss), and with a
    ``val_loader`` also ``val_accuracy`` and ``val_loss``.
    """
    check_non_negative(epochs=epochs)
    history = {"loss": []}
    if val_loader is not None:
        history.update(val_accuracy=[], val_loss=[])
    _call(callbacks, "on_train_begin", model)
    step = 0
    bar = tqdm(total=epochs * len(loader), disable=not progress, desc="training", leave=False)
    for epoch in range(epochs):
        model.train()
        total, count = 0.0, 0
        for X, y in loader:
            loss = loss_fn(model(X), y)
            optimizer.zero_grad()
            loss.backward()
            _call(callbacks, "on_after_backward", model, step)
            optimizer.step()
            _call(callbacks, "on_batch_end", model, step, loss.item())
            total += loss.item() * len(X)
            count += len(X)
            step += 1
            bar.update()
        history["loss"].append(total / max(count, 1))
        if val_loader is not None:
            result = evaluate(model, val_loader, loss_fn)
            history["val_accuracy"].append(result.accuracy)
            history["val_loss"].append(result.loss)
        bar.set_postfix(loss=f"{history['loss'][-1]:.4f}")
        _call(callbacks, "on_epoch_end", model, epoch, history)
    bar.close()
    return history


def evaluate(model, loader, loss_fn=F.cross_entropy):
    """Accuracy (fraction correct) and mean loss over ``loader``, in eval mode and without a graph."""
    was_training = model.training
    model.eval()
    correct, total_loss, count = 0, 0.0, 0
    with no_grad():
        for X, y in loader:
            logits = model(X)
            total_loss += loss_fn(logits, y).item() * len(X)
            correct += int((logits.data.argmax(axis=1) == y.data).sum())
            count += len(X)
    model.train(was_training)
    if count == 0:
        raise ValueError("evaluate got an empty loader")
    return Evaluation(correct / count, total_loss / count)
