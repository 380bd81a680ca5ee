"""Entry point of the process executor's worker: ``python -m live_restore._stage_worker FD``.

Its own module, imported by nothing, so that the worker's classes keep their real module
names when they cross the pipe (running ``-m`` on the executor's module would make them
``__main__``'s).
"""

from __future__ import annotations

import sys
from multiprocessing.connection import Connection

from live_restore.acquisition import worker_main

if __name__ == "__main__":
    worker_main(Connection(int(sys.argv[1])))
