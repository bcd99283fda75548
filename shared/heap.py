"""The cyclic garbage collector in a long-lived worker: what was imported is moved out of its reach.

A Functions worker imports its SDKs lazily, with the first invocation that needs them (msgraph-sdk alone brings
about 1,250 modules). Their functions, classes and dicts live as long as the process, yet every full collection
walks them all again: in the local host under the HR webhook's load a full collection took 46-58 ms, a pause
every invocation in flight waits through. ``gc.freeze`` (https://docs.python.org/3/library/gc.html#gc.freeze)
moves every object tracked at that moment to the permanent generation, which collections skip; reference
counting still frees them as before. So each invocation, as it ends, freezes the heap when modules were imported
since the last time: the first run of each code path, then never again.

What it costs: cyclic garbage alive at that moment (another invocation's, in flight) is never collected. That
happens a bounded number of times per process (once per code path's first run), so the loss is bounded too.
"""

from __future__ import annotations

import gc
import sys

_modules_at_last_freeze = 0


def settle() -> bool:
    """Freeze the heap if modules were imported since the last call; whether it did."""
    global _modules_at_last_freeze
    loaded = len(sys.modules)
    if loaded == _modules_at_last_freeze:
        return False
    _modules_at_last_freeze = loaded
    gc.freeze()
    return True
