"""Stopping a server when the process that started it dies, however it dies."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence

# `read` blocks until the pipe's write end closes: that happens when the owner closes
# it (cancel) or when the owner's process ends for any reason, SIGKILL included.
_WAIT_THEN_RUN = 'read _; exec "$@"'


class Reaper:
    """A tiny ``sh`` process that runs ``command`` once this process has ended.

    Servers started by a test session or by ``flowline-dev`` must not outlive it when
    it is killed (a CI timeout, kill -9): their owner cannot clean up, so this does.
    The owner calls ``cancel()`` before stopping the server itself.
    """

    def __init__(self, command: Sequence[str]) -> None:
        """Start watching; ``command`` runs when this process ends, unless cancelled."""
        # os.pipe() file descriptors are not inherited by other children (close-on-exec),
        # so only this process holds the write end.
        read_end, self._write_end = os.pipe()
        try:
            self._process = subprocess.Popen(
                ["/bin/sh", "-c", _WAIT_THEN_RUN, "flowline-reaper", *command],
                stdin=read_end,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                cwd="/",
                start_new_session=True,
            )
        except BaseException:
            os.close(self._write_end)
            raise
        finally:
            os.close(read_end)
        self._cancelled = False

    def cancel(self) -> None:
        """Stop watching without running the command (the owner is stopping the server)."""
        if self._cancelled:
            return
        self._cancelled = True
        self._process.kill()
        self._process.wait()
        os.close(self._write_end)


def kill_command(pid: int) -> list[str]:
    """The command that asks process ``pid`` to stop (SIGTERM)."""
    return ["kill", "-TERM", str(pid)]
