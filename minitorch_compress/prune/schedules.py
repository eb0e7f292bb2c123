"""When to prune, and how far: schedules, and the ``Pruner`` callback that follows one during training.

A schedule lists its pruning steps (``steps``) and the total sparsity to reach at each
(``sparsity(step)``); ``sparsity_at(step)`` is the target in force after any step (0 before the
first pruning step), which is what one plots.

- ``OneShot(s, step)``: prune once to ``s``, then fine-tune.
- ``Iterative(amount, rounds, every)``: prune ``amount`` of the remaining weights every ``every``
  steps, ``rounds`` times, fine-tuning in between: s_r = 1 - (1 - amount)^r after round r
  (Han et al., 2015).
- ``AGP(s_i, s_f, t0, t_end, dt)``: automated gradual pruning (Zhu & Gupta, 2017), every ``dt``
  steps from t0 to t_end = t0 + n dt:  s_t = s_f + (s_i - s_f) (1 - (t - t0) / (n dt))^3.
  It prunes fast while many redundant weights are left and slowly near the end.

``Pruner(schedule, criterion, granularity, scope, exclude)`` is passed to ``mc.train.fit`` as a
callback: after the optimizer step of every pruning step it calls ``prune_model`` with that
step's target, and it forwards ``on_after_backward`` to a criterion that accumulates gradients.
"""
from abc import ABC, abstractmethod
from bisect import bisect_right

from ..validation import check_non_negative, check_positive
from .scope import check_sparsity, prune_model, weight_sparsity


class Schedule(ABC):
    steps = ()

    @abstractmethod
    def sparsity(self, step):
        """The target at pruning step ``step``."""

    def target(self, step):
        """The sparsity to prune to after ``step``, or None when ``step`` is not a pruning step."""
        return self.sparsity(step) if step in self.steps else None

    def sparsity_at(self, step):
        """The target in force after ``step``: that of the last pruning step <= ``step`` (0 before)."""
        i = bisect_right(self.steps, step)
        return 0.0 if i == 0 else self.sparsity(self.steps[i - 1])


class OneShot(Schedule):
    def __init__(self, sparsity, step=0):
        check_sparsity(sparsity)
        check_non_negative(step=step)
        self.final_sparsity, self.steps = sparsity, (step,)

    def sparsity(self, step):
        return self.final_sparsity


class Iterative(Schedule):
    def __init__(self, amount, rounds, every, begin_step=0):
        check_sparsity(amount, "amount")
        check_positive(rounds=rounds, every=every)
        check_non_negative(begin_step=begin_step)
        self.amount, self.every, self.begin_step = amount, every, begin_step
        self.steps = tuple(range(begin_step, begin_step + rounds * every, every))

    def sparsity(self, step):
        rounds_done = (step - self.begin_step) // self.every + 1
        return 1 - (1 - self.amount) ** rounds_done


class AGP(Schedule):
    def __init__(self, initial_sparsity, final_sparsity, begin_step, end_step, frequency):
        check_sparsity(initial_sparsity, "initial_sparsity")
        check_sparsity(final_sparsity, "final_sparsity")
        check_non_negative(begin_step=begin_step, end_step=end_step, frequency=frequency)
        if frequency == 0 or end_step <= begin_step or (end_step - begin_step) % frequency:
            raise ValueError(f"end_step - begin_step = {end_step} - {begin_step} must be a positive "
                             f"multiple of frequency={frequency}")
        if initial_sparsity > final_sparsity:
            raise ValueError(f"initial_sparsity={initial_sparsity} exceeds final_sparsity={final_sparsity}")
        self.initial_sparsity, self.final_sparsity = initial_sparsity, final_sparsity
        self.begin_step, self.end_step = begin_step, end_step
        self.steps = tuple(range(begin_step, end_step + 1, frequency))

    def sparsity(self, step):
        progress = (step - self.begin_step) / (self.end_step - self.begin_step)
        return self.final_sparsity + (self.initial_sparsity - self.final_sparsity) * (1 - progress) ** 3


class Pruner:
    """A ``fit`` callback that prunes ``model`` on ``schedule`` (see ``prune_model`` for the options).

    ``history`` records ``(step, sparsity)`` after each pruning step, the sparsity measured over
    the pruned layers' weights.
    """

    def __init__(self, schedule, criterion=None, granularity=None, scope="local", exclude=()):
        if not isinstance(schedule, Schedule):
            raise TypeError(f"schedule must be a Schedule, got {type(schedule).__name__}")
        self.schedule, self.criterion, self.granularity = schedule, criterion, granularity
        self.scope, self.exclude = scope, exclude
        self.history = []

    def on_after_backward(self, model, step):
        accumulate = getattr(self.criterion, "on_after_backward", None)
        if accumulate is not None:
            accumulate(model, step)

    def on_batch_end(self, model, step, loss):
        target = self.schedule.target(step)
        if target is not None:
            prune_model(model, target, self.criterion, self.granularity, self.scope, self.exclude)
            self.history.append((step, weight_sparsity(model, self.exclude)))
