"""The error a command reports in one line (imported without NumPy: the
command line's usage errors answer at once)."""


class CommandError(Exception):
    """An error the command reports in one line, with its exit status:
    2 for usage errors (a column that does not exist), 1 for bad data."""

    def __init__(self, message: str, status: int = 1):
        super().__init__(message)
        self.status = status
