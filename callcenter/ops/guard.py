"""``python -m callcenter.ops.guard PID START``: stop process PID when our stdin closes.

Started by ``processes.spawn(..., guard=True)`` in a session of its own, with a pipe from the
parent as stdin. The parent closes it after stopping the child itself; if the parent dies first
(any signal, the OOM killer), the kernel closes it, and this watcher stops the child — unless
the pid now belongs to another process (its start time differs). Nothing else is imported: it
starts in a few milliseconds.
"""

from __future__ import annotations

import signal
import sys

from callcenter.ops.processes import ProcessMark, stop_process


def main(argv: list[str]) -> int:
    """Wait for EOF on stdin, then stop the watched process if it is still the same one."""
    mark = ProcessMark("guarded", int(argv[0]), int(argv[1]))
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C goes to the run, which stops in order
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # a closed terminal must not stop us first
    while sys.stdin.buffer.read(4096):
        pass
    stop_process(mark)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
