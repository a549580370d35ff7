"""Per-run stopping: a run's stop rule (RunConfig.stop_acc, stop_hold, stop_after) followed along its recorded
test accuracy, so that a run that has grokked leaves its batch instead of training to the budget.

The rule reads the recorded steps only (entry s: the model before update s). The hold is met at the first
recorded step s at which test_acc >= stop_acc has held at every recorded step from the streak's first one, h,
through s, with s - h >= stop_hold. The run then trains that step and stop_after more, so it stops at
T = s + 1 + stop_after: its final weights are those after T updates and its history the recorded steps
before T, as if its budget had been T. A T at or past n_steps changes nothing: the run trains to n_steps.
The rule is a function of the history alone, so a resumed batch finds the same stops.
"""
from __future__ import annotations

from .config import RunConfig


class StopRule:
    """One run's rule, fed its recorded (step, test accuracy) pairs in order."""

    def __init__(self, cfg: RunConfig):
        self.acc, self.hold, self.after, self.n_steps = cfg.stop_acc, cfg.stop_hold, cfg.stop_after, cfg.n_steps
        self.held_from: int | None = None    # first recorded step of the current streak at or above acc
        self.met_at: int | None = None       # the recorded step at which the hold was met

    def see(self, steps, accs):
        """Follow the rule over more recorded entries (after those seen before); entries after the hold is met
        change nothing."""
        for s, a in zip(steps, accs):
            if self.met_at is not None:
                return
            if float(a) >= self.acc:
                self.held_from = int(s) if self.held_from is None else self.held_from
                if s - self.held_from >= self.hold:
                    self.met_at = int(s)
            else:
                self.held_from = None

    @property
    def stop_at(self) -> int | None:
        """T, the step at which the run stops, once the hold is met and T < n_steps; else None."""
        if self.met_at is None or self.met_at + 1 + self.after >= self.n_steps:
            return None
        return self.met_at + 1 + self.after

    def meta(self) -> dict:
        """What the store records: stopped_at (None: trained to n_steps), stop_reason, and stop_held, the first and
        last recorded steps of the hold (None: not met)."""
        rule = f"test_acc >= {self.acc:g} at every recorded step for {self.hold} steps, then {self.after} more steps"
        if self.met_at is None:
            reason = f"n_steps reached; the rule ({rule}) was not met"
        elif self.stop_at is None:
            reason = (f"n_steps reached; the hold was met at step {self.met_at}, the stop would have come at step "
                      f"{self.met_at + 1 + self.after}")
        else:
            reason = (f"test_acc >= {self.acc:g} at every recorded step from {self.held_from} to {self.met_at}, "
                      f"then {self.after} more steps")
        return {"stopped_at": self.stop_at, "stop_reason": reason,
                "stop_held": None if self.met_at is None else [self.held_from, self.met_at]}


def check_interval(configs: list[RunConfig], most: int = 100) -> int:
    """Every how many steps the trainer reads the recorded test accuracy (one host sync each): at most `most`,
    and never more than stop_after + 1, so that a run's stop is known before its step T comes."""
    return min([most] + [c.stop_after + 1 for c in configs if c.has_stop_rule])
