"""A chapter's result box: the paper's claim, what we measured, and a verdict decided by a written rule.

Each chapter module's `result(S, C)` builds one from its exported claim numbers C, so a change of the
store changes the box; the rule is stated in the box beside the verdict it gave.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

VERDICTS = ("reproduced", "partly reproduced", "not reproduced", "contradicted")


@dataclass(frozen=True)
class ResultBox:
    claim: str          # the paper's claim in our words, with its figure or table
    measured: str       # our numbers: values, runs, seeds
    verdict: str        # one of VERDICTS
    rule: str           # how the verdict follows from the numbers

    def __post_init__(self):
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict={self.verdict!r} is not one of {', '.join(map(repr, VERDICTS))}")

    def to_dict(self) -> dict:
        return asdict(self)

    def markdown(self, rerun: str | None = None) -> str:
        """The box as MyST: an admonition whose colour says the verdict, with the claim and our numbers in view
        and the rule, then `rerun` (what re-running the chapter takes), in a closed dropdown: short enough that
        the chapter's first figure follows on the first screen."""
        kind = {"reproduced": "tip", "partly reproduced": "note", "not reproduced": "warning",
                "contradicted": "danger"}[self.verdict]
        title = "How the verdict follows from the numbers" + ("; what a re-run takes" if rerun else "")
        foot = f"\n\n{rerun}" if rerun else ""
        return (f"::::{{admonition}} Verdict: {self.verdict}\n:class: {kind} result-box\n"
                f"**The paper:** {self.claim}\n\n**We measured:** {self.measured}\n\n"
                f":::{{dropdown}} {title}\n:class-container: result-rule\n"
                f"**Rule:** {self.rule}{foot}\n:::\n::::\n")


def holding(F: dict) -> str:
    """Which tested claims hold and which do not ("a, b; not holding: c"), for a result box's numbers."""
    return ((", ".join(k for k, v in F.items() if v) or "none") + "; not holding: "
            + (", ".join(k for k, v in F.items() if not v) or "none"))


def by_share(hits: int, total: int, all_of: float = 1.0, some_of: float = 0.5) -> str:
    """A verdict from the share of settings where the claim holds: at least all_of of them reproduced, at
    least some_of partly, any at all (or none when total is 0) not reproduced."""
    if total == 0:
        return "not reproduced"
    share = hits / total
    return "reproduced" if share >= all_of else "partly reproduced" if share >= some_of else "not reproduced"
