"""The rubric judge: a client for an OpenAI-compatible chat endpoint that grades an answer PASS or FAIL."""

from __future__ import annotations

import json
import os
import re
import urllib.error
import urllib.request

from tunedeck.engine.gate.check_spec import short_quote

JUDGE_SYSTEM = (
    "You grade a model's answer against a rubric. Reply with one line: PASS or FAIL, a colon, "
    "and a reason of at most 20 words."
)


class Judge:
    """An OpenAI-compatible chat endpoint (vLLM, Ollama, llama.cpp server ...). Nothing is sent unless configured.

    A key, when the server needs one, comes from $TUNEDECK_JUDGE_API_KEY (never from the profile,
    which is saved with the run).
    """

    def __init__(self, url: str, model: str = "", timeout: float = 60.0):
        url = url.rstrip("/")
        if not url.endswith("/chat/completions"):
            url += "/chat/completions" if url.endswith("/v1") else "/v1/chat/completions"
        self.url, self.model, self.timeout = url, model, timeout

    def grade(self, rubric: str, messages: list, output: str, reference: str | None) -> tuple[bool | None, str]:
        passed, reason, _ = self.grade_with_trace(rubric, messages, output, reference)
        return passed, reason

    def grade_with_trace(
        self, rubric: str, messages: list, output: str, reference: str | None
    ) -> tuple[bool | None, str, dict]:
        """(pass or None, reason, trace): the trace keeps the prompt sent, the model and the raw reply,
        so a person can check the judge's verdict against their own."""
        prompt = (
            "\n".join(f"{m.get('role')}: {m.get('content')}" for m in messages)
            if isinstance(messages, list)
            else str(messages)
        )
        user = f"Rubric:\n{rubric}\n\nConversation:\n{prompt}\n\nAnswer to grade:\n{output}" + (
            f"\n\nReference answer:\n{reference}" if reference else ""
        )
        body = {
            "model": self.model or "default",
            "temperature": 0,
            "max_tokens": 100,
            "messages": [{"role": "system", "content": JUDGE_SYSTEM}, {"role": "user", "content": user}],
        }
        headers = {"Content-Type": "application/json"}
        key = os.environ.get("TUNEDECK_JUDGE_API_KEY")
        if key:
            headers["Authorization"] = f"Bearer {key}"
        req = urllib.request.Request(self.url, data=json.dumps(body).encode(), headers=headers, method="POST")
        trace = {"model": body["model"], "url": self.url, "system": JUDGE_SYSTEM, "prompt": user, "reply": None}
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                data = json.loads(resp.read().decode("utf-8"))
            reply = data["choices"][0]["message"]["content"] or ""
        except (urllib.error.URLError, OSError, ValueError, KeyError, IndexError, TypeError) as e:
            return None, f"skipped: judge error ({type(e).__name__}: {str(e)[:100]})", trace
        trace["reply"] = reply
        if isinstance(data.get("model"), str) and data["model"]:
            trace["model"] = data["model"]  # what the server says answered, when it says
        m = re.search(r"\b(PASS|FAIL)\b\s*[:\-]?\s*(.*)", reply, re.S | re.I)
        if not m:
            return None, f"skipped: judge reply has no PASS/FAIL: {short_quote(reply, 50)}", trace
        reason = " ".join(m.group(2).split())[:160] or m.group(1).upper()
        return m.group(1).upper() == "PASS", f"judge: {reason}", trace
