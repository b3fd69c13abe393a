"""How every pipeline chooses its best configuration: one rule (its table per results dataset,
``BEST_MODEL_RULES``, is in :mod:`music_genre.contracts`).

The best row of a results table is the one with the **highest held-out accuracy** (validation
accuracy, or cross-validation accuracy for transfer); test accuracy never chooses. Ties are
broken, in turn, by the table's tie-break columns, lower first: the **validation loss**, then
the **number of parameters** (handcrafted, CNN), or the **standard deviation of the CV accuracy
over the folds** (transfer); a missing value loses a tie. Rows still tied go to the **first in
table order**, so the choice is deterministic.

The training nodes (which model is saved), ``best_models.csv`` (reporting), the terminal
summary (:mod:`music_genre.hooks`) and :func:`music_genre.serving.best_model_kind` all call
:func:`select_best`, so they name the same configuration.
"""

from __future__ import annotations

import pandas as pd

from music_genre.audio.training_audio import selectable
from music_genre.contracts import BEST_MODEL_RULES, SelectionRule


def _rule(rule: SelectionRule | str) -> SelectionRule:
    if isinstance(rule, SelectionRule):
        return rule
    return BEST_MODEL_RULES[rule if rule.endswith("_results") else f"{rule}_results"]


def rank(table: pd.DataFrame, rule: SelectionRule | str) -> list[int]:
    """The row positions of ``table`` from best to worst under ``rule`` (a :class:`SelectionRule`
    or a pipeline / results dataset name such as ``"handcrafted"``)."""
    rule = _rule(rule)
    keys = [rule.select_by, *(c for c in rule.tie_breakers if c in table)]
    frame = pd.DataFrame(
        {f"k{i}": pd.to_numeric(table[c], errors="coerce").to_numpy() for i, c in enumerate(keys)}
    )
    frame["k0"] = -frame["k0"]  # higher accuracy first; every tie-breaker lower first
    frame["order"] = range(len(frame))
    ordered = frame.sort_values(
        [*(f"k{i}" for i in range(len(keys))), "order"], na_position="last", kind="mergesort"
    )
    return [int(i) for i in ordered["order"]]


def select_best(table: pd.DataFrame, rule: SelectionRule | str) -> int | None:
    """The position (``table.iloc``) of the best row of ``table`` under ``rule``; None when the
    table is empty or has no held-out accuracy."""
    rule = _rule(rule)
    if (
        table is None
        or table.empty
        or pd.to_numeric(table[rule.select_by], errors="coerce").isna().all()
    ):
        return None
    return rank(table, rule)[0]


def best_row(table: pd.DataFrame, rule: SelectionRule | str) -> pd.Series | None:
    """The best row of ``table`` under ``rule`` (see :func:`select_best`), or None."""
    position = select_best(table, rule)
    return None if position is None else table.iloc[position]


def saved_model_row(table: pd.DataFrame | None, rule: SelectionRule | str) -> pd.Series | None:
    """The row of the model a pipeline saved: the best under ``rule`` among the rows that may
    be chosen (not the comparison rows of a further ``handcrafted.source``, whose models are
    not saved); None without a table or such a row."""
    if table is None or table.empty:
        return None
    return best_row(selectable(table), rule)
