"""python tests/stop_at.py POINT SIGNAL COMMAND [ARGS...]: runs COMMAND (a script path, or a module name such as
experiments.rope) as `python COMMAND ARGS` would, and sends itself SIGNAL (INT, TERM or HUP) at POINT:
- work: the first forward pass, or the first .bin opened for writing (prepare); in a study's parent, which does
  none of its own, once its first train.py has train.bin open (it trains), or half a second after the first worker was
  given its task. INT goes to the whole process group, as a terminal's Ctrl-C does; the others to this process
  only, as `kill PID` does.
- save: just after the first file is put in place by a rename (checkpoint.atomic_write's os.replace), or, inside
  checkpoint.together, when its renames are done.
Used by tests/test_stops.py: the test of every command stopped while it works and while it saves."""

import builtins
import contextlib
import os
import runpy
import signal
import subprocess
import sys
import threading
import time

point, name, command, args = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
# the signals as a terminal gives them: a suite started in the background by a script inherits Ctrl-C ignored (a
# shell without job control ignores SIGINT in what it starts with &), and the command kept it so, as it should
signal.signal(signal.SIGINT, signal.default_int_handler)
signal.signal(signal.SIGTERM, signal.SIG_DFL)
signal.signal(signal.SIGHUP, signal.SIG_DFL)
sig = getattr(signal, "SIG" + name)
fired = False


def fire(wait=None):
    """Sends the signal now, or from a thread once wait() returns (the signal still acts in the main thread)."""
    global fired
    if fired:
        return
    fired = True

    def send():
        if wait:
            wait()
        if sig == signal.SIGINT:
            os.killpg(0, sig)
        else:
            os.kill(os.getpid(), sig)
    threading.Thread(target=send, daemon=True).start() if wait else send()


def training(child):
    """A wait until the child process has train.bin open (Linux's /proc; elsewhere, two seconds)."""
    def wait():
        if not os.path.isdir("/proc/self/fd"):
            return time.sleep(2)
        for _ in range(1200):
            try:
                fds = os.listdir(f"/proc/{child.pid}/fd")
            except OSError:  # it ended
                return
            for fd in fds:
                with contextlib.suppress(OSError):
                    if os.readlink(f"/proc/{child.pid}/fd/{fd}").endswith("/train.bin"):
                        return
            time.sleep(0.05)
    return wait


def patch(owner, attr, before=None, after=None):
    real = getattr(owner, attr)

    def call(self, *a, **k):
        if before:
            before()
        out = real(self, *a, **k)
        if after:
            after(self)
        return out
    setattr(owner, attr, call)


if point == "work":
    import torch
    patch(torch.nn.Module, "__call__", before=fire)
    patch(subprocess.Popen, "__init__", after=lambda child: fire(training(child)))
    import concurrent.futures
    patch(concurrent.futures.ProcessPoolExecutor, "submit", after=lambda pool: fire(lambda: time.sleep(0.5)))
    real_open = builtins.open

    def open_then_fire(file, mode="r", *a, **k):
        f = real_open(file, mode, *a, **k)
        if str(file).endswith(".bin") and any(m in mode for m in "wa+"):
            fire()
        return f
    builtins.open = open_then_fire
else:
    def after_rename(src, dst, *a, **k):
        real_replace(src, dst, *a, **k)
        if os.fspath(src).endswith(".tmp"):
            fire()
    real_replace, os.replace = os.replace, after_rename

sys.argv = [command, *args]
if command.endswith(".py"):
    sys.path.insert(0, os.path.dirname(os.path.abspath(command)))
    runpy.run_path(command, run_name="__main__")
else:
    sys.path.insert(0, os.getcwd())
    runpy.run_module(command, run_name="__main__", alter_sys=True)
