"""aunce: a reproducibility harness for contrastive facial action unit detection.

Importing the package is cheap on purpose (no torch, no pandas): every Snakemake job starts a
Python process, and each subcommand imports only what its step needs.
"""

__version__ = "0.1.0"


class AunceError(Exception):
    """A user-facing error: bad input, a missing file or an impossible setting.

    The CLI prints its message on one line (no traceback) and exits with status 2.
    """
