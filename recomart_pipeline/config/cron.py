"""Cron expression validation (5 fields, names, ranges, steps, lists and @aliases).

Written by hand because the config layer must stay free of dagster, and a bad cron should be
reported at load time with the field that is wrong, not when the daemon first ticks.
"""

from __future__ import annotations

ALIASES = frozenset(
    {"@hourly", "@daily", "@weekly", "@monthly", "@yearly", "@annually", "@midnight"}
)
_MONTHS = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
_DAYS = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]
# (name, low, high, names mapped to numbers)
_FIELDS: list[tuple[str, int, int, dict[str, int]]] = [
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day of month", 1, 31, {}),
    ("month", 1, 12, {name: i + 1 for i, name in enumerate(_MONTHS)}),
    ("day of week", 0, 7, {name: i for i, name in enumerate(_DAYS)}),
]


def _value(token: str, low: int, high: int, names: dict[str, int], field: str) -> int:
    number = names.get(token.upper())
    if number is None:
        if not token.isdigit():
            raise ValueError(f"{field} field: '{token}' is not a number or name")
        number = int(token)
    if not low <= number <= high:
        raise ValueError(f"{field} field: {number} is outside {low}-{high}")
    return number


def _check_field(text: str, field: str, low: int, high: int, names: dict[str, int]) -> None:
    for part in text.split(","):
        base, slash, step = part.partition("/")
        if slash and (not step.isdigit() or int(step) == 0):
            raise ValueError(f"{field} field: step '{step}' must be a positive integer")
        if base == "*":
            continue
        start, dash, end = base.partition("-")
        first = _value(start, low, high, names, field)
        if dash and _value(end, low, high, names, field) < first:
            raise ValueError(f"{field} field: range '{base}' runs backwards")


def validate_cron(expression: str) -> None:
    """Raise ValueError naming the bad field if ``expression`` is not a valid cron string."""
    text = expression.strip()
    if text in ALIASES:
        return
    parts = text.split()
    if len(parts) != 5:
        raise ValueError(
            f"cron needs 5 fields (minute hour day-of-month month day-of-week), got {len(parts)}"
        )
    for part, (field, low, high, names) in zip(parts, _FIELDS, strict=True):
        _check_field(part, field, low, high, names)
