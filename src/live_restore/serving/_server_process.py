"""The Triton server as one unit with its children, and what a dead one left behind.

- **Dies with us.** PyTriton starts ``tritonserver`` with a parent-death signal of SIGTERM, on
  which Triton drains in-flight requests first: a ``serve`` killed mid-request left it orphaned,
  holding the port for 30-60 s (measured, issue 42). :func:`tritonserver_dies_with_us` makes
  that signal SIGKILL, so the port is free as soon as ``serve`` is gone. (``serve`` itself is
  not tied to its parent: a server started with nohup must outlive its shell.)
- **Cleans up after a dead server.** PyTriton's shared-memory blocks (``/dev/shm/psm_*``) that
  no process maps any more are removed before a new server starts (:func:`remove_stale_blocks`).
- **Says what holds a port** when one is taken (:func:`port_holder`), instead of a timeout.

Linux only (``prctl``, ``/proc``); elsewhere these do nothing and return nothing.
"""

from __future__ import annotations

import errno
import os
import signal
import socket
import sys
import types
from pathlib import Path

__all__ = [
    "free_ports",
    "port_holder",
    "remove_stale_blocks",
    "tritonserver_dies_with_us",
    "tritonserver_pids",
]

SHARED_MEMORY = Path("/dev/shm")
STALE_PREFIXES = ("psm_",)  # PyTriton's proxy blocks


def tritonserver_dies_with_us() -> None:
    """The tritonserver PyTriton starts gets SIGKILL, not SIGTERM, when this process dies."""
    if not sys.platform.startswith("linux"):
        return
    # PyTriton 0.7 reads the signal for tritonserver's prctl from its module's `signal`; only
    # SIGTERM (that prctl) and SIGINT (its clean stop) are used there
    from pytriton.server import triton_server

    triton_server.signal = types.SimpleNamespace(SIGTERM=signal.SIGKILL, SIGINT=signal.SIGINT)


def _mapped_paths() -> set[str]:
    """Every file some process maps now (what /proc says; ours to read: our own processes)."""
    mapped: set[str] = set()
    for maps in Path("/proc").glob("[0-9]*/maps"):
        try:
            text = maps.read_text(errors="replace")
        except OSError:
            continue
        lines = [line for line in text.splitlines() if "/dev/shm/" in line]
        mapped.update(line.split(maxsplit=5)[-1] for line in lines)
    return mapped


def remove_stale_blocks() -> list[str]:
    """Remove PyTriton's shared-memory blocks that no process maps; their names."""
    if not SHARED_MEMORY.is_dir():
        return []
    candidates = [p for p in SHARED_MEMORY.iterdir() if p.name.startswith(STALE_PREFIXES)]
    if not candidates:
        return []
    mapped = _mapped_paths()
    removed = []
    for path in candidates:
        if str(path) in mapped or path.stat().st_uid != os.getuid():
            continue
        try:
            path.unlink()
        except OSError:
            continue
        removed.append(path.name)
    return removed


def _socket_inodes(port: int) -> set[str]:
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 9 and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(fields[9])
    return inodes


def port_holder(host: str, port: int) -> str | None:
    """None if ``host:port`` can be bound; else who holds it, as a phrase for an error."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
            return None
        except OSError as e:
            if e.errno != errno.EADDRINUSE:
                return f"port {port} cannot be bound on {host}: {e.strerror}"
    inodes = _socket_inodes(port)
    for fd_dir in Path("/proc").glob("[0-9]*/fd"):
        try:
            links = {os.readlink(fd) for fd in fd_dir.iterdir()}
        except OSError:
            continue
        if any(f"socket:[{inode}]" in links for inode in inodes):
            pid = fd_dir.parent.name
            try:
                command = (fd_dir.parent / "cmdline").read_bytes().split(b"\0")[0].decode()
            except OSError:
                command = "?"
            return f"port {port} is in use by PID {pid} ({Path(command).name})"
    return f"port {port} is in use (by a process this user cannot see)"


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """``count`` ports free on ``host`` now (for a server started next: tests, benchmarks)."""
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind((host, 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def tritonserver_pids() -> set[int]:
    """The PIDs of every tritonserver process this user can see."""
    found = set()
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if b"tritonserver" in cmdline.read_bytes().split(b"\0")[0]:
                found.add(int(cmdline.parent.name))
        except OSError:
            continue
    return found
