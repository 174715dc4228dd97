"""Realistic tabular data generated on the spot (nothing is downloaded): a consumer-credit table with a
sensitive attribute and an application timestamp, and a way to make later months drift."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd


def credit(n: int = 5000, *, seed: int = 0, start: str = "2026-01-01", days: int = 90,
           income_shift: float = 0.0) -> pd.DataFrame:
    """Loan applications with a `default` label.

    Columns: application_id, applied_at (timestamp), age, sex (the sensitive attribute), region,
    employment, income, loan_amount, term_months, debt_ratio, credit_history_years, prior_defaults,
    default. `income_shift` moves incomes (as a fraction) to simulate drift in later data."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    age = rng.integers(19, 75, n)
    sex = rng.choice(["female", "male"], n, p=[0.48, 0.52])
    region = rng.choice(["north", "south", "east", "west"], n, p=[0.3, 0.25, 0.25, 0.2])
    employment = rng.choice(["salaried", "self-employed", "contract", "unemployed"], n, p=[0.6, 0.2, 0.15, 0.05])
    income = rng.lognormal(mean=10.6, sigma=0.45, size=n) * (1 + income_shift)
    income *= np.where(employment == "unemployed", 0.3, 1.0) * (0.7 + 0.006 * np.minimum(age, 60))
    loan = rng.lognormal(mean=9.4, sigma=0.6, size=n)
    term = rng.choice([12, 24, 36, 48, 60], n, p=[0.1, 0.25, 0.35, 0.15, 0.15])
    debt_ratio = np.clip(rng.beta(2, 5, n) + loan / income / 4, 0, 1.5)
    history = np.clip(age - 18 - rng.integers(0, 10, n), 0, None)
    prior = rng.poisson(np.where(debt_ratio > 0.6, 0.6, 0.15))
    logit = (-2.2 + 3.0 * debt_ratio + 0.9 * prior - 0.045 * history - 0.000012 * (income - 40_000)
             + 0.5 * (employment == "unemployed") + 0.25 * (employment == "contract") + 0.01 * (term - 36))
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
