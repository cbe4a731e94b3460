"""Child processes for real: started in a group of their own, waited for over HTTP, stopped with all they spawned."""

from __future__ import annotations

import signal
import sys
import time

import psutil
import pytest

from poise.processes import free_port, start, stop, wait_for, wait_for_http

pytestmark = pytest.mark.slow  # every test here starts processes

#: A child that ignores SIGTERM and starts a grandchild in its group; it writes the grandchild's pid to argv[1].
STUBBORN = """
import signal, subprocess, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
grandchild = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
open(sys.argv[1], "w").write(str(grandchild.pid))
time.sleep(120)
"""


def test_a_stubborn_child_and_its_grandchild_are_killed_after_the_grace(tmp_path):
    pid_file = tmp_path / "grandchild.pid"
    child = start([sys.executable, "-c", STUBBORN, str(pid_file)])
    grandchild = psutil.Process(int(wait_for(lambda: pid_file.exists() and pid_file.read_text(), timeout=60)))
    began = time.monotonic()
    assert stop(child, grace=1.0) == -signal.SIGKILL  # SIGTERM was ignored
    assert time.monotonic() - began < 30
    gone, alive = psutil.wait_procs([grandchild], timeout=10)
    assert not alive, "the grandchild outlived the stop"


def test_a_polite_child_ends_on_sigterm(tmp_path):
    child = start([sys.executable, "-c", "import time; time.sleep(120)"])
    assert stop(child, grace=30) == -signal.SIGTERM
    assert stop(child) == -signal.SIGTERM  # stopping a stopped process changes nothing


def test_waiting_for_a_server_and_for_one_that_dies(tmp_path):
    port = free_port()
    server = start([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"], cwd=tmp_path)
    try:
        assert wait_for_http(f"http://127.0.0.1:{port}/", timeout=60, process=server) < 60
    finally:
        stop(server)
    log = tmp_path / "dies.log"
    dying = start([sys.executable, "-c", "print('no such model'); raise SystemExit(3)"], log=log)
    with pytest.raises(ChildProcessError, match=r"exited with code 3:\nno such model"):
        wait_for_http(f"http://127.0.0.1:{free_port()}/", timeout=60, process=dying, log=log)
    with pytest.raises(TimeoutError, match="an answer from .* did not happen within 0.5 s"):
        wait_for_http(f"http://127.0.0.1:{free_port()}/", timeout=0.5)
