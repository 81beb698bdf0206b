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


class MalformedDelivery(ClawbackError, ValueError):
    """A stored delivery's body cannot be understood (bad JSON, missing fields). Retrying cannot
    fix it: the delivery is marked failed for the operator."""


class TranslationError(ClawbackError, ValueError):
    """A platform payload lacks a field every order (or shipment) has: malformed, not merely
    unusual. Each connector's translator raises it; `Connector.parse` reports it as malformed."""


class RetryLater(ClawbackError):
    """The platform asked us to wait (throttled, token being renewed): try again after a while."""

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class GiveUp(ClawbackError):
    """Retrying cannot help (the platform refused the request for good)."""
