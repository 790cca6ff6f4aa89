"""One base class for bad input, so the command line can print it as one line and exit non-zero."""


class UserError(ValueError):
    """Bad input or configuration. The message names the problem and the fix."""
