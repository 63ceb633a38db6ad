"""The playground: the base model and one checkpoint answering the same prompt, side by side.

Server: `python -m tunedeck.engine.gate.playground RUN_DIR [--checkpoint N|best|chosen|latest]` loads the base once,
puts the checkpoint on it (a LoRA adapter on the same model; full fine-tuning weights on a copy,
since they replace the base's in place), prints {"ready": true, "checkpoint": N, ...}, then serves
JSON lines on stdin until EOF:

  {"id": 1, "messages": [{"role": "user", "content": "..."}], "max_new_tokens": 128}
      ("base_messages": the base's own conversation, for a multi-turn chat where each model's earlier
       answers differ; default: "messages")
      -> {"id": 1, "step": N, "base": {"text", "latency_ms", "new_tokens"}, "checkpoint": {...same keys}}
         ("step" says which checkpoint answered)
  {"id": 2, "cmd": "checkpoint", "step": M}  -> {"id": 2, "switched": true, "step": M}
  anything else, or a failure             -> {"id": ..., "error": "one line"}; the process keeps serving

The base answers with [gate] base_system_prompt replacing the system turn, as the gate asks it the
task sets (general and safety sets it asks as written; the app's title says which prompt the base had).
Generation follows [gate] (greedy by default).
stdout carries the protocol only: fd 1 is pointed at stderr at start-up, so a library's print()
lands in the log instead of corrupting a reply.

Client: PlaygroundClient, for the app's worker threads. This module imports no torch, transformers
or peft at import time; the server imports them when it runs.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import queue
import subprocess
import sys
import threading
import traceback
from pathlib import Path

PLAYGROUND_LOG = "playground.log"
MAX_NEW_TOKENS = 4096
_EOF = object()


class RequestError(ValueError):
    """A request the server cannot serve as sent; str() is the error line's text, `rid` the request's id."""

    def __init__(self, message: str, rid=None):
        super().__init__(message)
        self.rid = rid


class PlaygroundError(RuntimeError):
    """The playground process failed to start, died, or did not answer in time; str() says why."""


# ---- server --------------------------------------------------------------------------------------


class SideBySide:
    """The base model and one checkpoint of a run, loaded for generation."""

    def __init__(self, run_dir: Path, which=None):
        from tunedeck.engine.gate.eval_inputs import gen_settings
        from tunedeck.engine.gate.model_session import ModelSession
        from tunedeck.engine.models.model_loading import load_tokenizer
        from tunedeck.engine.run.checkpoint_choice import select_checkpoint
        from tunedeck.engine.run.run_record import load_run_record

        self.run_dir = Path(run_dir)
        self.profile = load_run_record(self.run_dir).profile
        which = select_checkpoint(self.run_dir, which)[0].step  # a wrong step fails before the slow load
        self.settings = gen_settings(self.profile)
        self.system_prompt = self.profile.gate.base_system_prompt or None
        self.tokenizer = load_tokenizer(self.profile)
        self.session = ModelSession(self.profile)
        self.base_model = self.session.base()  # the one load from disk
        self.full = self.profile.method.adapter == "none"
        if self.full:
            import copy

            # full weights overwrite the model they load into: give the checkpoint its own copy of the base
            self.base_model = copy.deepcopy(self.base_model)
        self.model = None
        self.step: int | None = None
        self.switch(which)

    def switch(self, which) -> int:
        from tunedeck.engine.run.checkpoint_choice import select_checkpoint

        ckpt, _ = select_checkpoint(self.run_dir, which)
        if ckpt.step != self.step:  # re-loading the active adapter under its own name would delete it
            self.model = self.session.checkpoint(ckpt)
            self.step = ckpt.step
        return self.step

    def _one(self, model, messages, max_new_tokens: int, system_prompt=None) -> dict:
        from tunedeck.engine.gate.generate import generate

        s = self.settings
        g = generate(
            model,
            self.tokenizer,
            [messages],
            max_new_tokens=max_new_tokens,
            batch_size=1,
            system_prompt=system_prompt,
            temperature=s.temperature,
            top_p=s.top_p,
            seed=s.seed,
        )[0]
        return {"text": g.text, "latency_ms": round(g.latency_ms, 2), "new_tokens": g.new_tokens}

    def answer(self, messages, max_new_tokens: int, base_messages=None) -> dict:
        base_messages = base_messages or messages  # multi-turn: the base continues its own conversation
        if self.full:
            base = self._one(self.base_model, base_messages, max_new_tokens, self.system_prompt)
        else:
            with self.model.disable_adapter():  # the same weights without the adapter: what the base says
                base = self._one(self.model, base_messages, max_new_tokens, self.system_prompt)
        return {"base": base, "checkpoint": self._one(self.model, messages, max_new_tokens), "step": self.step}


def parse_request(line: str, default_max_new_tokens: int) -> dict:
    try:
        req = json.loads(line)
    except ValueError as e:
        raise RequestError(f"not a JSON line ({e})") from None
    if not isinstance(req, dict):
        raise RequestError("a request is a JSON object")
    rid = req.get("id")  # a bad request still gets its id back, so the client can match the error
    if "cmd" in req:
        if req["cmd"] != "checkpoint":
            raise RequestError(f"unknown cmd {req['cmd']!r}; the only command is 'checkpoint'", rid)
        if not isinstance(req.get("step"), (int, str)) or isinstance(req.get("step"), bool):
            raise RequestError("cmd 'checkpoint' needs \"step\": a step number, best, chosen or latest", rid)
        return req
    for key in ("messages", "base_messages") if "base_messages" in req else ("messages",):
        messages = req.get(key)
        ok = isinstance(messages, str) or (
            isinstance(messages, list)
            and messages
            and all(
                isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)
                for m in messages
            )
        )
        if not ok:
            raise RequestError(
                f'"{key}" must be a non-empty list of {{"role": str, "content": str}} (or a plain-text prompt)', rid
            )
    n = req.get("max_new_tokens", default_max_new_tokens)
    if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= MAX_NEW_TOKENS:
        raise RequestError(f"max_new_tokens must be a whole number from 1 to {MAX_NEW_TOKENS}", rid)
    req["max_new_tokens"] = n
    return req


def _error_text(e: BaseException) -> str:
    if isinstance(e, ValueError):  # our user errors (ExportError, PromptError, ModelLoadError, RequestError)
        return str(e).splitlines()[0] if str(e) else type(e).__name__
    first = str(e).splitlines()[0][:300] if str(e) else ""
    return f"{type(e).__name__}: {first}" if first else type(e).__name__


def handle(models: SideBySide, line: str) -> dict:
    """One request line -> one reply; never raises (errors become {"error": ...})."""
    rid = None
    try:
        req = parse_request(line, models.settings.max_new_tokens)
        rid = req.get("id")
        if req.get("cmd") == "checkpoint":
            return {"id": rid, "switched": True, "step": models.switch(req["step"])}
        return {"id": rid, **models.answer(req["messages"], req["max_new_tokens"], req.get("base_messages"))}
    except Exception as e:
        if not isinstance(e, ValueError):
            traceback.print_exc(file=sys.stderr)  # the log gets the detail; the reply stays one line
        return {"id": getattr(e, "rid", rid), "error": _error_text(e)}


def _protocol_stream():
    """A private copy of stdout for replies; fd 1 then points at stderr so stray prints go to the log."""
    fd = os.dup(sys.stdout.fileno())
    sys.stdout.flush()
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    return os.fdopen(fd, "w", encoding="utf-8", buffering=1)


def serve(run_dir: Path, which=None) -> int:
    out = _protocol_stream()

    def emit(obj: dict) -> None:
        out.write(json.dumps(obj, ensure_ascii=False, default=str) + "\n")
        out.flush()

    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        models = SideBySide(run_dir, which)
    except Exception as e:
        if not isinstance(e, ValueError):
            traceback.print_exc(file=sys.stderr)
        emit({"ready": False, "error": _error_text(e)})
        return 2
    emit(
        {
            "ready": True,
            "checkpoint": models.step,
            "base_model": models.profile.model.base,
            "adapter": models.profile.method.adapter,
            "precision": models.session.precision,
            "device": models.session.device,
            "base_system_prompt": models.system_prompt,
        }
    )
    for raw in sys.stdin.buffer:
        line = raw.decode("utf-8", errors="replace").strip()
        if line:
            emit(handle(models, line))
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m tunedeck.engine.gate.playground", description="side-by-side generation server (JSON lines)"
    )
    ap.add_argument("run_dir", help="the run directory")
    ap.add_argument("--checkpoint", help="step, best, chosen or latest (default: chosen, else best, else latest)")
    args = ap.parse_args(argv)
    try:
        return serve(Path(args.run_dir), args.checkpoint)
    except (KeyboardInterrupt, BrokenPipeError):  # the app went away mid-request
        return 0


# ---- client --------------------------------------------------------------------------------------


class PlaygroundClient:
    """Drives one playground process. Blocking calls, safe to share between threads (one request at a time)."""

    def __init__(self, run_dir, checkpoint=None, *, log_path=None, python: str | None = None):
        self.run_dir = Path(run_dir)
        self.requested = checkpoint
        self.checkpoint: int | None = None  # the step answering now, once started
        self.info: dict = {}  # the ready line: base_model, adapter, precision, device, ...
        self.log_path = Path(log_path) if log_path else self.run_dir / PLAYGROUND_LOG
        self.python = python or sys.executable
        self._proc: subprocess.Popen | None = None
        self._replies: queue.Queue = queue.Queue()
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._closed = False  # close() was called: never start a process after it

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 600.0) -> dict:
        """Spawn the process and wait until the models are loaded; returns the ready line."""
        if self._closed:
            raise PlaygroundError("the playground was closed")
        if self._proc is not None:
            raise PlaygroundError("the playground is already started")
        cmd = [self.python, "-m", "tunedeck.engine.gate.playground", str(self.run_dir)]
        if self.requested is not None:
            cmd += ["--checkpoint", str(self.requested)]
        env = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}
        log_fd = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            self._proc = subprocess.Popen(
                cmd,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log_fd,
                env=env,
                cwd=str(self.run_dir),
                close_fds=True,
            )
        finally:
            os.close(log_fd)
        if self._closed:  # close() ran while the process was being spawned: it may have missed it
            proc, self._proc = self._proc, None
            if proc is not None:
                proc.kill()
                proc.wait()
            raise PlaygroundError("the playground was closed")
        threading.Thread(target=self._read, name="playground-reader", daemon=True).start()
        ready = self._await(lambda r: "ready" in r, timeout, "to load the models")
        if not ready.get("ready"):
            self.close()
            raise PlaygroundError(ready.get("error") or "the playground failed to start")
        self.checkpoint, self.info = ready.get("checkpoint"), ready
        return ready

    def ask(
        self, messages, max_new_tokens: int | None = None, timeout: float | None = None, base_messages=None
    ) -> dict:
        """Both answers: {"id", "step", "base": {text, latency_ms, new_tokens}, "checkpoint": {...}},
        or {"id", "error"} when this request failed (the process keeps serving). `base_messages`: the
        base's own conversation in a multi-turn chat (default: `messages`)."""
        req: dict = {"messages": messages}
        if base_messages is not None:
            req["base_messages"] = base_messages
        if max_new_tokens is not None:
            req["max_new_tokens"] = max_new_tokens
        return self.request(req, timeout)

    def switch(self, step, timeout: float | None = None) -> int:
        """Put another checkpoint on the loaded base; raises PlaygroundError when it cannot."""
        reply = self.request({"cmd": "checkpoint", "step": step}, timeout)
        if "error" in reply:
            raise PlaygroundError(reply["error"])
        self.checkpoint = reply["step"]
        return self.checkpoint

    def request(self, payload: dict, timeout: float | None = None) -> dict:
        with self._lock:
            rid = next(self._ids)
            self._send(json.dumps({**payload, "id": rid}))
            return self._await(lambda r: r.get("id") == rid, timeout, "to answer")

    def close(self, timeout: float = 10.0) -> None:
        self._closed = True
        proc, self._proc = self._proc, None
        if proc is None:
            return
        loading = not self.info  # still loading the models: it reads stdin only once loaded, so EOF would wait
        try:
            proc.stdin.close()  # EOF: the server finishes the request in hand and exits
        except OSError:
            pass
        try:
            proc.wait(0 if loading else timeout)
        except subprocess.TimeoutExpired:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stdout:
            proc.stdout.close()

    def __enter__(self) -> "PlaygroundClient":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- plumbing --

    def _send(self, line: str) -> None:
        if not self.alive:
            raise PlaygroundError(self._gone())
        try:
            self._proc.stdin.write(line.encode("utf-8") + b"\n")
            self._proc.stdin.flush()
        except (BrokenPipeError, OSError):
            raise PlaygroundError(self._gone()) from None

    def _read(self) -> None:
        proc = self._proc
        for raw in proc.stdout:
            try:
                reply = json.loads(raw)
            except ValueError:
                continue  # the protocol stream carries only our JSON lines; skip anything torn
            if isinstance(reply, dict):
                self._replies.put(reply)
        self._replies.put(_EOF)

    def _await(self, match, timeout: float | None, what: str) -> dict:
        while True:
            try:
                reply = self._replies.get(timeout=timeout)
            except queue.Empty:
                raise PlaygroundError(f"the playground took more than {timeout:g} s {what}") from None
            if reply is _EOF:
                self._replies.put(_EOF)  # every later call sees it too
                raise PlaygroundError(self._gone())
            if match(reply):
                return reply
            # else: the late reply to a request that timed out; drop it

    def _gone(self) -> str:
        code = self._proc.poll() if self._proc is not None else None
        tail = ""
        try:
            lines = self.log_path.read_text(encoding="utf-8", errors="replace").strip().splitlines()
            tail = lines[-1] if lines else ""
        except OSError:
            pass
        return (
            "the playground process exited"
            + (f" (code {code})" if code is not None else "")
            + (f": {tail}" if tail else "")
            + f"; see {self.log_path}"
        )


if __name__ == "__main__":
    sys.exit(main())
