"""Iterative magnitude pruning with rewinding: the search for lottery tickets.

Frankle & Carbin (2019, arXiv:1803.03635), with late rewinding (Frankle et al. 2020, arXiv:1912.05392):

1. Initialise the network, train it, and keep theta_k, its weights after k iterations (k = 0: the
   initialisation itself).
2. Prune a fraction p of the weights that are still alive, by the magnitude of their trained
   values: in each layer (``scope="local"``, with one p per layer if given) or ranked across all
   layers (``scope="global"``). After r rounds, 1 - (1 - p)^r of the weights are pruned.
3. Rewind the survivors to theta_k (``rewind``) and train again: this is the round's ticket.
   Repeat from 2.

Every round is saved with ``mc.save`` in ``directory``: ``rewind_state.npz`` (theta_k) and
``masks_round_<r>.npz``; ``ticket(r)`` rebuilds round r's network from those files alone, so a
round can be retrained and checked later. Each retraining gets the same budget as the dense run.
"""
import os

from .. import prune
from ..table import Table
from ..serialization import load, save
from ..validation import check_non_negative
from .controls import apply_masks, random_masks, reinitialized
from .rewind import RewindPoint, rewind

SCOPES = ("local", "global")
COLUMNS = ["round", "remaining", "ticket", "reinit", "random"]


class IterativeMagnitudePruning:
    """Find lottery tickets for the networks ``make_model()`` builds.

    ``make_model()`` returns a freshly initialised model (drawing from ``mc.get_rng()``);
    ``train(model, callbacks)`` trains it in place, passing ``callbacks`` to ``mc.train.fit``;
    ``evaluate(model)`` returns its accuracy. ``rate`` is the fraction of the surviving weights
    pruned per round: a number, or with ``scope="local"`` a dict ``{layer name: rate}`` (Frankle &
    Carbin prune LeNet's output layer at half the rate of the others). The ``weight`` of every
    ``Linear``/``Conv2d`` not in ``exclude`` is pruned; biases never are.
    """

    def __init__(self, make_model, train, evaluate, directory, rate=0.2, scope="local",
                 rewind_iteration=0, exclude=()):
        if scope not in SCOPES:
            raise ValueError(f"unknown scope {scope!r}; expected one of {SCOPES}")
        if isinstance(rate, dict) and scope == "global":
            raise ValueError("per-layer rates need scope='local'; global pruning ranks all layers with one rate")
        for value in (rate.values() if isinstance(rate, dict) else [rate]):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
                raise ValueError(f"pruning rate {value!r} must be a number in [0, 1)")
        self.make_model, self.train, self.evaluate = make_model, train, evaluate
        self.directory, self.rate, self.scope, self.exclude = os.fspath(directory), rate, scope, exclude
        self.rewind_iteration = RewindPoint(rewind_iteration).iteration   # validates it
        self.record = Table(COLUMNS, [], {c: "{:.1%}" for c in COLUMNS[1:]})

    # ----- files -----------------------------------------------------------------------------
    def _path(self, name):
        return os.path.join(self.directory, name + ".npz")

    def rewind_state(self):
        """theta_k, the weights every ticket is rewound to, as saved."""
        return {name: t.data for name, t in load(self._path("rewind_state")).items()}

    def masks(self, round):
        """The masks of round ``round`` (``{layer name: 0/1 array}``), as saved."""
        return {name: t.data for name, t in load(self._path(f"masks_round_{round}")).items()}

    def ticket(self, round):
        """Round ``round``'s ticket, untrained: masks applied and survivors rewound to theta_k."""
        model = apply_masks(self.make_model(), self.masks(round))
        rewind(model, self.rewind_state())
        return model

    # ----- the search --------------------------------------------------------------------------
    def _layers(self, model):
        return prune.prunable_layers(model, self.exclude)

    def _prune(self, model):
        """Prune ``rate`` of the surviving weights by the magnitude of their current (trained) values."""
        layers = self._layers(model)
        unknown = [name for name in self.rate if name not in layers] if isinstance(self.rate, dict) else []
        if unknown:
            raise ValueError(f"rates given for {unknown}, which are not prunable layers; those are {list(layers)}")
        # module.weight is refreshed only by the next forward; rank the values after the last step
        scores = {(m, "weight"): prune.pruned_tensor(m, "weight") for m in layers.values()}
        if self.scope == "global":
            prune.global_unstructured(list(scores), prune.L1Unstructured, importance_scores=scores, amount=self.rate)
            return
        for name, module in layers.items():
            rate = self.rate.get(name, 0.0) if isinstance(self.rate, dict) else self.rate
            prune.l1_unstructured(module, "weight", rate, importance_scores=scores[(module, "weight")])

    def _masks_of(self, model):
        return {name: m.weight_mask.data.copy() for name, m in self._layers(model).items()}

    def _train_and_evaluate(self, model):
        self.train(model, [])
        return self.evaluate(model)

    def run(self, rounds, controls=True):
        """Round 0 trains the dense network; rounds 1..``rounds`` prune, rewind and retrain.

        Returns ``record``, a table of the fraction of weights remaining and the accuracy of the
        ticket and (with ``controls``) of the random-reinit and random-mask controls per round.
        """
        check_non_negative(rounds=rounds)
        os.makedirs(self.directory, exist_ok=True)
        model, point = self.make_model(), RewindPoint(self.rewind_iteration)
        self.train(model, [point])
        if point.state is None:
            raise ValueError(f"training ran fewer than rewind_iteration={self.rewind_iteration} steps")
        save(point.state, self._path("rewind_state"))
        rows = [(0, 1.0, self.evaluate(model), "", "")]
        for r in range(1, rounds + 1):
            self._prune(model)
            masks = self._masks_of(model)
            save(masks, self._path(f"masks_round_{r}"))
            model = self.ticket(r)
            accuracy = self._train_and_evaluate(model)
            remaining = 1 - prune.weight_sparsity(model, self.exclude)
            if controls:
                reinit = self._train_and_evaluate(reinitialized(self.make_model, masks))
                shuffled = self._train_and_evaluate(random_masks(self.make_model, masks, self.rewind_state()))
            else:
                reinit = shuffled = ""
            rows.append((r, remaining, accuracy, reinit, shuffled))
        self.record = Table(COLUMNS, rows, self.record.formats)
        return self.record
