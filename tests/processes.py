"""Forked children for the tests: run a piece of work in one, wait for it with a bound, and say how
it ended. A child that hangs (a lock left held across fork() or by a dead process) is killed and
fails the test instead of hanging the run."""

from __future__ import annotations

import os
import select
import signal
import time
import traceback
from collections.abc import Callable

import pytest

WORK_RAISED = 70            # the exit code of a child whose work raised (EX_SOFTWARE)


def wait_for(pid: int, timeout: float = 30.0) -> int:
    """The child's wait status, as soon as it ends; a child still running after timeout seconds is
    killed and fails the test."""
    if not exited_within(pid, timeout):
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        pytest.fail(f"process {pid} was still running after {timeout:g} s (a lock left held?)")
    return os.waitpid(pid, 0)[1]


def exited_within(pid: int, timeout: float) -> bool:
    """Whether the child ends within timeout seconds. A pidfd becomes readable when it ends; where
    the kernel offers none (before Linux 5.3, or a sandbox refusing it), its status is polled."""
    try:
        fd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        deadline = time.monotonic() + timeout
        while os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.0005)
        return True
    try:
        return bool(select.select([fd], [], [], timeout)[0])
    finally:
        os.close(fd)


def in_child(work: Callable[[], object], timeout: float = 30.0) -> int:
    """Runs work() in a forked child and returns its wait status: exit code 0 when work returned,
    WORK_RAISED (with the traceback on stderr) when it raised, an assertion included."""
    pid = os.fork()
    if pid == 0:
        code = WORK_RAISED
        try:
            work()
            code = 0
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(code)
    return wait_for(pid, timeout)


def killed(status: int) -> bool:
    return os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL


def describe(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exit code {os.waitstatus_to_exitcode(status)}"
