"""The one exception type users see: a single sentence saying what was expected, what was found, and
what to do. The CLI prints it and exits non-zero; the dashboard shows it in the page."""


class DtvizInputError(ValueError):
    """Bad input (file, folder, matrix, option). ``str(err)`` is the whole message."""
