"""Topic names: the one place that knows how a prefix becomes a topic name."""

from __future__ import annotations

from dataclasses import dataclass

#: Input topics that `cxstream produce` accepts, by short name.
INPUTS = ("surveys", "interactions", "customers")
#: Name of the worker's state table (its changelog is `<group>-state-changelog`).
STATE_TABLE = "state"


@dataclass(frozen=True, slots=True)
class Topics:
    prefix: str

    @property
    def surveys(self) -> str:
        return f"{self.prefix}surveys"

    @property
    def interactions(self) -> str:
        return f"{self.prefix}interactions"

    @property
    def customers(self) -> str:
        return f"{self.prefix}customers"

    @property
    def alerts(self) -> str:
        return f"{self.prefix}alerts"

    @property
    def deadletter(self) -> str:
        return f"{self.prefix}deadletter"

    @property
    def notifications_deadletter(self) -> str:
        return f"{self.prefix}notifications.deadletter"

    @property
    def notifications_sent(self) -> str:
        """Compacted delivery state of the notifier, keyed by customer_id."""
        return f"{self.prefix}notifications.sent"

    def input(self, short: str) -> str:
        """Full name of an input topic given `surveys`, `interactions` or `customers`."""
        if short not in INPUTS:
            raise ValueError(f"unknown input topic {short!r}; expected one of {', '.join(INPUTS)}")
        return f"{self.prefix}{short}"

    def compacted(self) -> set[str]:
        """Topics whose retention is compaction (latest value per key)."""
        return {self.customers, self.notifications_sent}

    def all_external(self) -> list[str]:
        return [self.surveys, self.interactions, self.customers, self.alerts, self.deadletter,
                self.notifications_deadletter, self.notifications_sent]
