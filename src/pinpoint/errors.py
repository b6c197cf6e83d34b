"""The one exception users should see: bad input, said in one line that names the file."""


class InputError(ValueError):
    """A file the user gave us is missing, unreadable or malformed.

    The message is a single line that starts with the file's path (and line number
    where one applies), so the CLI can print it as is instead of a traceback.
    """


def first_line(exc: BaseException) -> str:
    """The first line of a library's exception message (its name when it has none): what a one-line
    error quotes of an OpenCV, onnxruntime or PyTorch failure."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
