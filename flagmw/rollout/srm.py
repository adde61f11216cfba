"""Sample-ratio mismatch: is the traffic split what the stage says it is?

A one-degree-of-freedom chi-squared goodness-of-fit test of the units seen in each arm
against the stage's share (Statsig's and GrowthBook's health check). The p-value of
χ²(1) is ``erfc(sqrt(χ² / 2))`` — no SciPy needed. The bar is p < 0.001 (χ² > 10.83),
the common practitioner convention: strict, so that checking at every controller tick
raises few false alarms.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["SRM_P_VALUE", "SrmResult", "srm_check"]

#: the p-value under which a split is declared mismatched
SRM_P_VALUE = 0.001


@dataclass(frozen=True)
class SrmResult:
    """Attributes: candidate/baseline: units seen; expected: the candidate's expected
    fraction; chi2; p_value; mismatch: ``p_value < threshold`` (False when either
    expected count is below 5 — too few units to test)."""

    candidate: int
    baseline: int
    expected: float
    chi2: float
    p_value: float
    mismatch: bool

    def describe(self) -> str:
        total = self.candidate + self.baseline
        seen = self.candidate / total * 100 if total else 0.0
        return (
            f"sample ratio mismatch: candidate {self.candidate} of {total} units "
            f"({seen:.1f} %) for an expected {self.expected * 100:.1f} %, "
            f"chi2 {self.chi2:.2f}, p {self.p_value:.2g}"
        )


def srm_check(
    candidate: int, baseline: int, expected: float, threshold: float = SRM_P_VALUE
) -> SrmResult:
    """Test ``candidate`` / ``baseline`` unit counts against the expected candidate
    fraction ``expected`` (0–1)."""
    total = candidate + baseline
    e_c, e_b = total * expected, total * (1 - expected)
    if total == 0 or e_c < 5 or e_b < 5:
        return SrmResult(candidate, baseline, expected, 0.0, 1.0, False)
    chi2 = (candidate - e_c) ** 2 / e_c + (baseline - e_b) ** 2 / e_b
    p = math.erfc(math.sqrt(chi2 / 2))
    return SrmResult(candidate, baseline, expected, chi2, p, p < threshold)
