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


class NotDownloaded(MotionError):
    """A Hub repo that is not in the local cache while Hub access is off (``offline``, or
    ``HF_HUB_OFFLINE``): a front end can say how to allow access in its own terms."""

    def __init__(self, repo_id: str, message: str):
        self.repo_id = repo_id
        super().__init__(message)
