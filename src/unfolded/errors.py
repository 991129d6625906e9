"""Errors that describe a problem with the user's input or environment, not a bug.

The command line prints these as one plain sentence (``error: ...``) without a traceback; set
``UNFOLDED_DEBUG=1`` to see the traceback anyway. Kept free of heavy imports.
"""

from __future__ import annotations

__all__ = ["UserError"]


class UserError(Exception):
    """Base class of every error the command line reports as a plain message."""
