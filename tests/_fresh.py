"""Scripts run in a fresh Python process, without paying the libraries' imports every time.

A saved model must load and predict in a process that never saw it being made. Starting a new
interpreter for that costs tens of seconds on a loaded machine (torch, pandas, scikit-learn and
skops's scan of every estimator), once per test. Here one helper interpreter per test process
imports those third-party libraries once, and nothing else: not nntune, not a test module, no
tensor computed. Every script then runs in a new process forked from it, with its own pid,
its own argv and its own stdout/stderr: nntune is imported there from scratch, and nothing of
the process that trained or saved the model exists in it.

`warm()` starts the helper in the background (call it before training, so that its imports
overlap the training); `run_script()` runs one script and returns its exit code and output;
`start_script()` starts one (a server) and returns at once.
"""

from __future__ import annotations

import atexit
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

# Third-party libraries only: what a saved model's loading imports, and what the scripts use.
PRELOAD = ("numpy", "pandas", "torch", "torch._dynamo", "sklearn", "sklearn.linear_model", "skops.io",
           "onnxruntime", "safetensors.torch", "optuna", "scipy.stats", "pydantic", "yaml")

SERVER = r"""
import importlib, json, os, signal, sys, traceback

for name in sys.argv[1:]:
    try:
        importlib.import_module(name)
    except ImportError:
        pass
out = os.fdopen(os.dup(1), "w")
print("ready", file=out, flush=True)
background = set()
for line in sys.stdin:
    request = json.loads(line)
    for pid in list(background):  # reap the background scripts that ended
        if os.waitpid(pid, os.WNOHANG)[0]:
            background.discard(pid)
    if "wait" in request:  # a background script: its exit code once it ends
        pid = request["wait"]
        code = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) if pid in background else None
        background.discard(pid)
        print(json.dumps(code), file=out, flush=True)
        continue
    pid = os.fork()
    if pid == 0:  # the fresh process: its own stdin, stdout, stderr and argv
        code = 1
        try:
            signal.alarm(request["timeout"])  # a script that hangs is killed, not waited for
            stdin = os.open(os.devnull, os.O_RDONLY)
            os.dup2(stdin, 0)
            for fd, path in ((1, request["stdout"]), (2, request["stderr"])):
                os.dup2(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), fd)
            sys.stdin = open(0)
            sys.stdout, sys.stderr = open(1, "w"), open(2, "w", buffering=1)  # as python does
            sys.argv = ["-c", *request["args"]]
            if request.get("cwd"):
                os.chdir(request["cwd"])
            exec(compile(request["script"], "<fresh>", "exec"), {"__name__": "__main__"})
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except BaseException:
            traceback.print_exc()
        finally:
            try:
                sys.stdout.flush()
                sys.stderr.flush()
            finally:
                os._exit(code)
    if request.get("background"):
        background.add(pid)
        print(json.dumps(pid), file=out, flush=True)
        continue
    _, status = os.waitpid(pid, 0)
    print(json.dumps(os.waitstatus_to_exitcode(status)), file=out, flush=True)
"""

_lock = threading.RLock()
_server: subprocess.Popen | None = None


def warm() -> None:
    """Start the helper interpreter (if it is not running) without waiting for its imports."""
    global _server
    with _lock:
        if _server is None or _server.poll() is not None:
            _server = subprocess.Popen([sys.executable, "-c", SERVER, *PRELOAD], stdin=subprocess.PIPE,
                                       stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            _server.ready = False
            atexit.register(_stop, _server)


def _stop(server: subprocess.Popen) -> None:
    if server.poll() is None:
        server.stdin.close()  # it ends at the end of its input; still importing, it is killed
        try:
            server.wait(timeout=2 if server.ready else 0.1)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def _ask(request: dict):
    """Send one request to the helper interpreter (started if needed); its one-line answer."""
    warm()
    server = _server
    if not server.ready:
        assert server.stdout.readline().strip() == "ready", "the helper interpreter did not start"
        server.ready = True
    server.stdin.write(json.dumps(request) + "\n")
    server.stdin.flush()
    reply = server.stdout.readline()
    assert reply, "the helper interpreter died"
    return json.loads(reply)


def _request(script: str, args, timeout: int, scratch: Path, **extra) -> dict:
    return {"script": script, "args": [str(a) for a in args], "timeout": timeout,
            "stdout": str(scratch / "stdout"), "stderr": str(scratch / "stderr"), "cwd": str(Path.cwd()), **extra}


def run_script(script: str, *args: object, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run `script` with `args` as sys.argv[1:] in a fresh process; its exit code, stdout, stderr."""
    with _lock, tempfile.TemporaryDirectory() as scratch:
        request = _request(script, args, timeout, Path(scratch))
        code = _ask(request)
        return subprocess.CompletedProcess(["<fresh>", *request["args"]], code, Path(scratch, "stdout").read_text(),
                                           Path(scratch, "stderr").read_text())


class Started:
    """A script running in the background in a fresh process (a server, say)."""

    def __init__(self, script: str, args, timeout: int) -> None:
        self._scratch = tempfile.TemporaryDirectory()
        with _lock:
            self.pid = _ask(_request(script, args, timeout, Path(self._scratch.name), background=True))
        self.returncode: int | None = None

    def poll(self) -> int | None:
        """Its exit code if it has ended, else None."""
        if self.returncode is None:
            try:
                os.kill(self.pid, 0)
                with open(f"/proc/{self.pid}/stat") as stat:
                    ended = stat.read().rsplit(")", 1)[1].split()[0] == "Z"  # a zombie: ended, not yet reaped
            except (ProcessLookupError, FileNotFoundError):
                ended = True
            if ended:
                self.wait()
        return self.returncode

    def terminate(self) -> None:
        if self.returncode is None:
            try:
                os.kill(self.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    def wait(self, timeout: float | None = None) -> int:
        """Its exit code, once it ends (`timeout` is not needed: terminate() ends it at once)."""
        if self.returncode is None:
            with _lock:
                self.returncode = _ask({"wait": self.pid})
        return self.returncode

    @property
    def stderr(self) -> str:
        return Path(self._scratch.name, "stderr").read_text()

    @property
    def stdout(self) -> str:
        return Path(self._scratch.name, "stdout").read_text()


def start_script(script: str, *args: object, timeout: int = 300) -> Started:
    """Start `script` in a fresh process and return at once; terminate() and wait() end it."""
    return Started(script, args, timeout)
