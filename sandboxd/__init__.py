"""sandboxd: runs a learner's code against an exercise's tests in a locked-down container."""

from __future__ import annotations

__version__ = "0.1.0"
