"""The error type for mistakes a user can fix (bad path, bad column, bad config value)."""


class UserInputError(Exception):
    """Raised with a one-line message naming the bad input and the fix; the CLI prints it without a traceback."""
