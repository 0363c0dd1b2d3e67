# SPDX-License-Identifier: LGPL-2.1-or-later
"""A private redis-server for one measurement of bench/run.py: the queue
on Redis (issue 14) against the local one. Started on a unix socket in a
temporary folder, without persistence, and stopped by pid; its peak RSS
is part of what the measurement reports."""

import os
import shutil
import subprocess
import tempfile
import time

SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


def available():
    return os.access(SERVER, os.X_OK)


class Server:
    """with Server () as server: server.uri is where it listens."""

    def __enter__(self):
        self.dir = tempfile.mkdtemp(prefix="mpq-bench-redis-")
        self.socket = os.path.join(self.dir, "redis.sock")
        log = os.path.join(self.dir, "redis.log")
        self.proc = subprocess.Popen(
            [SERVER, "--port", "0", "--unixsocket", self.socket, "--unixsocketperm", "700",
             "--save", "", "--appendonly", "no", "--dir", self.dir, "--logfile", log],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # Ready once its log says so (a bench, not a test: polling is fine);
        # 7.0 on a unix socket only says "ready to accept connections at".
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited with status {self.proc.returncode}")
            if os.path.exists(log) and "ready to accept connections" in open(log).read().lower():
                self.uri = "redis+unix://" + self.socket
                return self
            time.sleep(0.02)
        self.proc.kill()
        raise RuntimeError("redis-server did not start in 30 s")

    def peak_rss_kib(self):
        with open(f"/proc/{self.proc.pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
        return None

    def __exit__(self, *exc):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)
        return False
