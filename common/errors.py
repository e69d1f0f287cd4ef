"""The error type for mistakes a user can fix (bad path, bad column, bad config value)."""


class UserInputError(Exception):
    """Raised with a one-line message naming the bad input and the fix; the CLI prints it without a traceback."""


def require_at_least(minimum: int, section: str = "data", **options: int | None) -> None:
    """Stop with a one-line error naming the first option below `minimum` (`None` means unset and passes).

    For sizes such as `batch_size`: caught in `__init__`, not as a traceback from deep inside a DataLoader.
    """
    for name, value in options.items():
        if value is not None and value < minimum:
            raise UserInputError(f"{name}={value} must be at least {minimum}; set --{section}.{name}")
