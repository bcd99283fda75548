"""The world kept in a file, so that the simulated cloud is one world across restarts.

``python -m tools.m365sim --state-dir .local/m365sim`` reads ``world.json`` there at start (if it exists) and writes
it back after changes (at most once a second) and when it stops. The file is written atomically (a temporary file in
the same folder, flushed and renamed over the old one), readable by its owner only: it holds Key Vault secret values,
signing keys and digests of client secrets and refresh tokens, like the cloud it stands for. A file that cannot be
read, or was written by a simulator with another snapshot format, stops the start with a message saying so and what
to do (``make clean`` drops it); nothing is silently discarded.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from tools.m365sim.backends.errors import SimError
from tools.m365sim.backends.world import World

STATE_FILE = "world.json"


class StateError(SimError):
    """The saved world cannot be used: the simulator refuses to start on it."""

    def __init__(self, message: str) -> None:
        super().__init__(500, "WorldUnreadable", message)


class WorldFile:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.path = folder / STATE_FILE

    def load_into(self, world: World) -> bool:
        """Restore ``world`` from the file; False when there is none yet. Raises StateError."""
        if not self.path.exists():
            return False
        try:
            state: Any = json.loads(self.path.read_text())
            if not isinstance(state, dict):
                raise ValueError("the file does not hold a JSON object")
            world.restore(state)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise StateError(
                f"{self.path} cannot be restored ({exc}); remove it (`make clean` drops the local world) to start "
                "afresh"
            ) from exc
        return True

    def save(self, world: World) -> None:
        """Write the world, atomically, mode 0600."""
        self.folder.mkdir(parents=True, exist_ok=True)
        data = json.dumps(world.snapshot(), separators=(",", ":"))
        fd, temp = tempfile.mkstemp(dir=self.folder, prefix=f".{STATE_FILE}.")
        try:
            with os.fdopen(fd, "w") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temp, self.path)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise
