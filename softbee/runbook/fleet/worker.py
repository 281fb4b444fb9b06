"""A fleet worker: one process running the targets the fleet hands it, one after another.

``fleet run --parallel N`` starts N workers (``python -m softbee.runbook.fleet.worker``,
each in its own session) and keeps each busy. A worker reuses, from one target to the
next, only what carries nothing of a target:

* the imported modules (papermill, nbconvert, jupyter_client: a second or more a run);
* the checked runbook and parameters (:class:`~softbee.runbook.run.execute.PreparedRun`);
* the HTML exporter with its compiled templates (:func:`softbee.runbook.archive.render.exporter`).

Kernels are never reused. Each target's run has a kernel of its own, launched with that
target's ``DATABASE_URL`` in its environment (and, for a target with binds, its ``bind_urls``
parameter: masked in the notebook, the real URLs among the kernel's secrets,
:mod:`softbee.runbook.util.secrets`), and stopped when the run is archived. What a
worker does share in time is start-up: when the fleet names the target that comes next,
the worker launches that target's kernel before running the current one, so it is ready
when its turn comes. A kernel launched for a target the worker does not run after all
(another worker took it, or the fleet stopped) is stopped without running a cell.

Protocol: JSON lines. In (stdin): ``{"op": "start", "runbook", "values", "texts",
"archive_dir", "cwd"}`` once, answered ``{"ready": true}`` (or ``{"error": ...}``); then
``{"op": "run", "target", "url", "bind_urls", "next": {"target", "url", "bind_urls"} | null}``
for each target (``bind_urls``: ``{bind: URL}`` or null),
answered with the target's outcome. End of input: the worker stops its spare kernel and
exits. SIGTERM (the fleet's target timeout) stops the running target, which is archived as
failed like any interrupted run; its outcome is written, then the worker exits. Protocol
lines use their own descriptors: stray output of the worker or of a kernel goes to stderr.
URLs travel on the pipe, never on a command line.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

STDERR_TAIL = 64 * 1024


# -- the worker process -----------------------------------------------------------------------


START_TIMEOUT_S = 300.0
_STOPPING = threading.Event()


def _terminate(signum: int, _frame: Any) -> None:
    """SIGTERM: stop the running target (it is archived as failed, as by the CLI), then exit."""
    from softbee.runbook.run.process import Terminated

    _STOPPING.set()  # the run may swallow the interrupt (it archives itself): exit after it
    raise Terminated(f"stopped by signal {signal.Signals(signum).name}")


def main() -> int:
    """Serve the fleet on stdin/stdout until the end of input or SIGTERM."""
    protocol_in = os.fdopen(os.dup(0), "r", encoding="utf-8")
    protocol_out = os.fdopen(os.dup(1), "w", encoding="utf-8")
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)  # nothing else reads the fleet's messages
    os.dup2(2, 1)  # nor writes among the answers
    os.close(null)
    signal.signal(signal.SIGTERM, _terminate)
    worker = _Worker(protocol_out)
    try:
        for line in protocol_in:
            if line.strip():
                worker.handle(json.loads(line))
            if _STOPPING.is_set():
                break
    except KeyboardInterrupt:  # SIGTERM while waiting for the next target
        pass
    finally:
        worker.close()
    return 0


class _Worker:
    def __init__(self, out: IO[str]) -> None:
        self.out = out
        self.prepared: Any = None
        self.spare: tuple[str, Any] | None = None  # (target, kernel launched for it)

    def answer(self, message: Mapping[str, Any]) -> None:
        self.out.write(json.dumps(message) + "\n")
        self.out.flush()

    def handle(self, message: Mapping[str, Any]) -> None:
        if message.get("op") == "start":
            self.start(message)
        elif message.get("op") == "run":
            self.run(message)

    def start(self, message: Mapping[str, Any]) -> None:
        from softbee.runbook.archive import render
        from softbee.runbook.run.execute import prepare_run

        try:
            self.prepared = prepare_run(
                message["runbook"], values=message.get("values") or {},
                texts=message.get("texts") or {}, archive_dir=message["archive_dir"],
                cwd=message["cwd"], write_page=False)
            import papermill  # noqa: F401 - once, for every target

            render.warm()
        except Exception as exc:  # noqa: BLE001 - the fleet reports it for every target
            self.answer({"error": f"{type(exc).__name__}: {exc}"})
            return
        self.answer({"ready": True})

    def for_target(self, bind_urls: Mapping[str, str] | None) -> Any:
        """The prepared run for one target: with its ``bind_urls`` hidden like any secret."""
        if not bind_urls:
            return self.prepared
        from dataclasses import replace

        from softbee.runbook.util.secrets import hide

        parameters = {**self.prepared.parameters, "bind_urls": dict(bind_urls)}
        return replace(self.prepared, parameters=parameters, hidden=hide(parameters))

    def kernel_for(self, target: str, url: str, prepared: Any) -> Any:
        """The spare kernel if it was launched for ``target``, else a new one."""
        from softbee.runbook.run.execute import start_kernel

        spare, self.spare = self.spare, None
        if spare is not None and spare[0] == target:
            return spare[1]
        if spare is not None:
            spare[1].discard()
        return start_kernel(prepared, {**os.environ, "DATABASE_URL": url})

    def run(self, message: Mapping[str, Any]) -> None:
        from softbee.runbook.run.execute import run_prepared, start_kernel

        name, url = message["target"], message["url"]
        began = time.monotonic()
        outcome: dict[str, Any] = {"target": name}
        try:
            prepared = self.for_target(message.get("bind_urls"))
            kernel = self.kernel_for(name, url, prepared)
            following = message.get("next")
            if following:  # launched now: it starts up while this target runs
                try:
                    self.spare = (following["target"], start_kernel(
                        self.for_target(following.get("bind_urls")),
                        {**os.environ, "DATABASE_URL": following["url"]}))
                except Exception:  # noqa: BLE001 - that target will launch its own
                    self.spare = None
            run = run_prepared(prepared, kernel)
            record = run.record
            outcome.update(
                run_id=record.get("run_id"), status=record.get("status"),
                revision_before=record.get("revision_before"),
                revision_after=record.get("revision_after"), html=str(run.html),
                error=record.get("error"))
        except KeyboardInterrupt as exc:  # SIGTERM outside the cells: nothing was archived
            outcome.update(status="failed", error={"type": type(exc).__name__,
                                                   "message": str(exc)})
        except Exception as exc:  # noqa: BLE001 - the target failed before it was archived
            outcome.update(status="failed", error={"type": type(exc).__name__,
                                                   "message": str(exc)})
        outcome["duration_s"] = round(time.monotonic() - began, 3)
        self.answer(outcome)

    def close(self) -> None:
        spare, self.spare = self.spare, None
        if spare is not None:
            spare[1].discard()


# -- the fleet's side -------------------------------------------------------------------------


class WorkerProcess:
    """A running worker, as the fleet drives it: start it, hand it targets, read outcomes."""

    def __init__(self, *, runbook: str, values: Mapping[str, Any], texts: Mapping[str, str],
                 archive_dir: Path, cwd: Path, environ: Mapping[str, str]) -> None:
        env = {key: value for key, value in environ.items() if key != "DATABASE_URL"}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "softbee.runbook.fleet.worker"], cwd=cwd, env=env,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            start_new_session=True)  # a terminal's Ctrl-C reaches the fleet runner only
        self.retired = False
        self._answers: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._stderr: deque[str] = deque()
        self._stderr_size = 0
        threading.Thread(target=self._read_answers, daemon=True).start()
        threading.Thread(target=self._read_stderr, daemon=True).start()
        self.send({"op": "start", "runbook": runbook, "values": dict(values),
                   "texts": dict(texts), "archive_dir": str(archive_dir), "cwd": str(cwd)})
        self.ready = self._answer(START_TIMEOUT_S)
        if not self.ready or self.ready.get("error") or not self.ready.get("ready"):
            reason = self.failure(self.ready, "the worker did not start")
            self.close(timeout_s=5.0)
            raise RuntimeError(reason)

    def send(self, message: Mapping[str, Any]) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(message) + "\n")
        self.process.stdin.flush()

    def run(self, target: str, url: str, bind_urls: Mapping[str, str] | None,
            following: tuple[str, str, Mapping[str, str] | None] | None,
            timeout_s: float, kill_grace_s: float) -> dict[str, Any]:
        """Run one target; on timeout SIGTERM (archived as failed), then SIGKILL after the grace."""
        try:
            self.send({"op": "run", "target": target, "url": url,
                       "bind_urls": dict(bind_urls) if bind_urls else None,
                       "next": {"target": following[0], "url": following[1],
                                "bind_urls": dict(following[2]) if following[2] else None}
                       if following else None})
        except OSError:
            return {"target": target, "status": "failed",
                    "error": self.failure(None, "the worker stopped")}
        answer = self._answer(timeout_s)
        if answer is None and self.process.poll() is None:
            self.retired = True  # it exits after this target: the next one gets a new worker
            self.process.send_signal(signal.SIGTERM)
            answer = self._answer(kill_grace_s)
            if answer is None:
                self.process.kill()
            reason = f"timed out after {timeout_s:.0f} s"
            if answer is not None:
                error = answer.get("error") or {}
                answer["error"] = {**error, "message": f"{reason}: {error.get('message', '')}"}
                return answer
            return {"target": target, "status": "failed", "error": reason}
        if answer is None:
            return {"target": target, "status": "failed",
                    "error": self.failure(None, "the worker stopped")}
        return answer

    @property
    def alive(self) -> bool:
        """Whether the worker can take another target."""
        return not self.retired and self.process.poll() is None

    def close(self, timeout_s: float = 30.0) -> None:
        """End its input, wait for it to stop its spare kernel and exit; kill it if it does not."""
        try:
            if self.process.stdin is not None:
                self.process.stdin.close()
        except OSError:
            pass
        try:
            self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def failure(self, answer: Mapping[str, Any] | None, default: str) -> str:
        """One line saying why: the worker's error, else the last line of its stderr."""
        if answer and answer.get("error"):
            return str(answer["error"])
        lines = [line.strip() for line in "".join(self._stderr).splitlines() if line.strip()]
        return lines[-1] if lines else f"{default} (exit {self.process.poll()})"

    def _answer(self, timeout_s: float | None) -> dict[str, Any] | None:
        try:
            return self._answers.get(timeout=timeout_s)
        except queue.Empty:
            return None

    def _read_answers(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            try:
                self._answers.put(json.loads(line))
            except ValueError:
                continue
        self._answers.put(None)  # the worker is gone

    def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:  # drained, or a chatty kernel would block the worker
            self._stderr.append(line)
            self._stderr_size += len(line)
            while self._stderr_size > STDERR_TAIL and len(self._stderr) > 1:
                self._stderr_size -= len(self._stderr.popleft())


if __name__ == "__main__":
    from softbee.runbook.run.process import exit_now

    exit_now(main())
