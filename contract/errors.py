"""The one exception of the contract package."""

from __future__ import annotations


class ContractError(ValueError):
    """A topic or payload does not follow the contract; ``reason`` says how."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
