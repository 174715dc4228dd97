"""Realistic tabular data generated on the spot (nothing is downloaded): a consumer-credit table with a
sensitive attribute and an application timestamp, and a way to make later months drift."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd


def credit(n: int = 5000, *, seed: int = 0, start: str = "2026-01-01", days: int = 90,
           income_shift: float = 0.0, population_shift: float = 0.0, concept_shift: float = 0.0) -> pd.DataFrame:
    """Loan applications with a `default` label.

    Columns: application_id, applied_at (timestamp), age, sex (the sensitive attribute), region,
    employment, income, loan_amount, term_months, debt_ratio, credit_history_years, prior_defaults,
    default. Three knobs make later data drift (0 leaves the data as it was):

    - `income_shift` moves incomes (as a fraction);
    - `population_shift` (0 to 1) brings in another applicant population: younger, more on contracts, asking
      for larger loans, so more indebted;
    - `concept_shift` (0 to 1) changes the relationship between the features and the outcome: at 1, debt
      raises the risk far less, contract and self-employment raise it far more, and a short credit history
      most."""
    import numpy as np
    import pandas as pd

    for name, value in (("population_shift", population_shift), ("concept_shift", concept_shift)):
        if not 0 <= value <= 1:
            from shipyard.errors import ValidationError

            raise ValidationError(f"{name} {value!r} must be between 0 (no drift) and 1.", **{name: value})
    rng = np.random.default_rng(seed)
    age = rng.integers(19, 75, n)
    sex = rng.choice(["female", "male"], n, p=[0.48, 0.52])
    region = rng.choice(["north", "south", "east", "west"], n, p=[0.3, 0.25, 0.25, 0.2])
    employment = rng.choice(["salaried", "self-employed", "contract", "unemployed"], n, p=[0.6, 0.2, 0.15, 0.05])
    income = rng.lognormal(mean=10.6, sigma=0.45, size=n) * (1 + income_shift)
    income *= np.where(employment == "unemployed", 0.3, 1.0) * (0.7 + 0.006 * np.minimum(age, 60))
    loan = rng.lognormal(mean=9.4, sigma=0.6, size=n)
    term = rng.choice([12, 24, 36, 48, 60], n, p=[0.1, 0.25, 0.35, 0.15, 0.15])
    if population_shift:  # drawn only when asked for, so the data without drift stays as it was
        moved = rng.random(n) < population_shift
        age = np.where(moved, np.clip(age - rng.integers(5, 20, n), 19, None), age)
        employment = np.where(moved & (rng.random(n) < 0.4), "contract", employment)
        loan = np.where(moved, loan * (1.5 + rng.random(n)), loan)
    debt_ratio = np.clip(rng.beta(2, 5, n) + loan / income / 4, 0, 1.5)
    history = np.clip(age - 18 - rng.integers(0, 10, n), 0, None)
    prior = rng.poisson(np.where(debt_ratio > 0.6, 0.6, 0.15))
    logit = (-2.2 + 3.0 * debt_ratio + 0.9 * prior - 0.045 * history - 0.000012 * (income - 40_000)
             + 0.5 * (employment == "unemployed") + 0.25 * (employment == "contract") + 0.01 * (term - 36))
    if concept_shift:
        changed = (-0.8 + 0.0 * debt_ratio + 0.8 * prior - 0.22 * np.minimum(history, 20)
                   + 3.2 * (employment == "contract") + 2.8 * (employment == "self-employed")
                   - 0.000008 * (income - 40_000) - 0.04 * (term - 36))
        logit = (1 - concept_shift) * logit + concept_shift * changed
    default = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    applied = pd.Timestamp(start) + pd.to_timedelta(rng.integers(0, days * 86_400, n), unit="s")
    frame = pd.DataFrame({
        "application_id": np.arange(seed * 1_000_000, seed * 1_000_000 + n),
        "applied_at": applied.sort_values().to_numpy(),
        "age": age, "sex": sex, "region": region, "employment": employment,
        "income": income.round(2), "loan_amount": loan.round(2), "term_months": term,
        "debt_ratio": debt_ratio.round(4), "credit_history_years": history, "prior_defaults": prior,
        "default": default,
    })
    return frame
