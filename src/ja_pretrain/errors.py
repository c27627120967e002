"""The one exception type users see: the CLI prints its message without a traceback."""


class UserError(Exception):
    """Bad input or a bad option. The message names the file/line/option and says what to do."""
