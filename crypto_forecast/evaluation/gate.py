"""The gate that decides what is served: the LSTM's forecaster only when, in walk-forward,
it beats the best baseline (persistence or drift) by the margins in `params.yaml: promote`
and improves on the current champion's LSTM scored on the same origins; else the naive
forecaster with its own calibrated bands. A pure function of the scores and the
thresholds, so the decision is reproducible from reports/evaluation.json and params."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Served = Literal["lstm", "naive"]


@dataclass(frozen=True)
class GateThresholds:
    """Skill is the LSTM's RMSE over the best baseline's on the same origins (below 1 beats it)."""

    max_skill_h1: float = 1.0
    max_skill_mean: float = 1.0
    min_gain_vs_champion: float = 0.0


DEFAULT_GATE = GateThresholds()


@dataclass(frozen=True)
class Champion:
    """The registry's current champion LSTM, scored on the same walk-forward origins."""

    label: str  # how reasons name it: "version 3 (run 0a1b2c3d)"
    skill_mean: float | None


@dataclass(frozen=True)
class GateDecision:
    served: Served
    reasons: tuple[str, ...] = field(default_factory=tuple)

    def summary(self) -> str:
        what = "the LSTM's forecast" if self.served == "lstm" else "the naive forecast (persistence)"
        return f"serving {what}: " + "; ".join(self.reasons)


def decide(*, skill_h1: float | None, skill_mean: float | None, thresholds: GateThresholds,
           champion: Champion | None = None) -> GateDecision:
    """Serve the LSTM only if every check passes; each check adds its reason either way.

    `skill_mean` is the skill averaged over 1..horizon days. A `champion` LSTM (scored on
    the same origins) must be beaten by `min_gain_vs_champion` in mean skill. An undefined
    skill (no error to compare with) never passes.
    """
    reasons: list[str] = []
    passed = True
    for name, value, limit in (("1-day skill", skill_h1, thresholds.max_skill_h1),
                               ("mean skill over the horizon", skill_mean, thresholds.max_skill_mean)):
        if value is None:
            reasons.append(f"{name} is undefined")
            passed = False
        elif value < limit:
            reasons.append(f"{name} {value:.3f} < {limit:g}")
        else:
            reasons.append(f"{name} {value:.3f} is not below {limit:g}")
            passed = False
    if champion is None:
        reasons.append("no champion LSTM to compare with")
    elif skill_mean is None:
        reasons.append(f"this model's mean skill is undefined; the champion ({champion.label}) "
                       "was not compared")
    elif champion.skill_mean is None:
        reasons.append(f"the champion ({champion.label}) has no mean skill on these origins; "
                       "not compared")
    else:
        gain = champion.skill_mean - skill_mean
        if gain >= thresholds.min_gain_vs_champion:
            reasons.append(f"mean skill {skill_mean:.3f} vs the champion's {champion.skill_mean:.3f} "
                           f"({champion.label}): gain {gain:+.3f} ≥ {thresholds.min_gain_vs_champion:g}")
        else:
            reasons.append(f"mean skill {skill_mean:.3f} vs the champion's {champion.skill_mean:.3f} "
                           f"({champion.label}): gain {gain:+.3f} is below "
                           f"{thresholds.min_gain_vs_champion:g}")
            passed = False
    return GateDecision("lstm" if passed else "naive", tuple(reasons))
