"""The one error type for the product's domain errors.

Raised where a problem is found and naming the bad input (a file and line, a prompt, a
length), so that a command line prints it and the Blender add-on turns it into a report.
"""


class MotionError(Exception):
    """A user-facing problem with an input: a file, a prompt, a length, a checkpoint."""


class BVHError(MotionError):
    """A BVH file that cannot be read; the message names the file and the line."""

    def __init__(self, path: str, line: int | None, reason: str):
        self.path = str(path)
        self.line = line
        self.reason = reason
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {reason}")
