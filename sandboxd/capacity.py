"""How much work this host takes at once: its job slots and its warm-sandbox budget."""

from __future__ import annotations

import os


def default_slots() -> int:
    """Job slots when none are configured: one per CPU this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)
