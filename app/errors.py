"""One base exception for the domain, and the specific, documented cases under it."""


class ClawbackError(Exception):
    """Base of every error Clawback raises on purpose. `str(err)` is a sentence for a human."""


class ConfigError(ClawbackError):
    """The environment is missing a setting or holds a value that is unsafe where we run."""


class InvalidInput(ClawbackError):
    """Input from an operator, a merchant or a platform was refused; nothing was written."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class NotFound(ClawbackError):
    """A shop, customer or order named by the caller does not exist."""


class InsufficientCoins(ClawbackError):
    """A redemption asked for more coins than the customer has available."""


class InvariantViolation(ClawbackError):
    """A ledger invariant does not hold; raised inside the transaction so nothing is committed."""
