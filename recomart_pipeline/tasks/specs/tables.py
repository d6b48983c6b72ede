"""The canonical tables (columns, event types): names only, shared by specs and tasks."""

from dataclasses import dataclass


@dataclass(frozen=True)
class TableLayout:
    """The canonical columns of one table: required ones first, then optional ones."""

    required: tuple[str, ...]
    optional: tuple[str, ...]

    @property
    def columns(self) -> tuple[str, ...]:
        return self.required + self.optional


TABLES: dict[str, TableLayout] = {
    "interactions": TableLayout(("user_id", "item_id", "event_type", "timestamp"), ("rating",)),
    "items": TableLayout(("item_id",), ("category", "price", "title")),
    "users": TableLayout(("user_id",), ("signup_date", "region")),
}

EVENT_TYPES: tuple[str, ...] = ("view", "add_to_cart", "purchase", "rating")

# The weight of an interaction that stands for several source events (``aggregate`` in the
# ingestion source): written only by aggregation, never mapped from a file. Downstream it is
# a nullable number; null (and a table without the column) means 1, one event.
WEIGHT = "weight"
