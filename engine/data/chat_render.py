"""The model's chat template as a renderer: one place for the fixes every caller needs.

Training (engine/data/loss_masks.py), DPO and KTO rows (engine/data/preference_tokens.py), `tunedeck
inspect`, the gate and the playground all render through ChatRenderer, so they see the same text.

Where the system message goes. Most templates render it themselves. Two kinds do not:
- a template without a system role raises on one: the system message is folded into the first user
  turn (the usual practice);
- a template that writes the system message only where the conversation ends on a user turn (Mistral's
  published templates put it into the last [INST] at inference, and drop it from any conversation that
  ends on a reply, so a training row would lose it): the system message is folded into the last user
  turn, which gives exactly the text the template itself renders at inference. A template that drops the
  system message everywhere gets it folded into the first user turn.
The renderer learns which from the first row that needs it and folds every later row the same way (for
LAST_USER_TURN that is checked to be the template's own text where the template writes the system message).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

FIRST_USER_TURN = "first user turn"
LAST_USER_TURN = "last user turn"


SLOW_TOKENIZER = (
    "a slow (Python) tokenizer cannot map text to tokens, so the loss cannot be masked; use the model's "
    'fast tokenizer, or set data.assistant_only_loss = "off"'
)


class MaskError(ValueError):
    """One row cannot be rendered or masked; str() says why and what to do (no file or line: the caller adds them)."""


@dataclass
class ChatRenderer:
    """The tokenizer's chat template as a renderer, with the system message placed as the module doc says."""

    tokenizer: object
    system_fold: str = ""  # "", FIRST_USER_TURN or LAST_USER_TURN, learned from the first row that needs it
    _kwargs: dict = field(default_factory=dict)
    _compiled: dict = field(default_factory=dict)  # tools or not -> compiled Jinja template
    _turn_format: TurnFormat | None = None

    def __post_init__(self):
        self._kwargs = dict(self.tokenizer.special_tokens_map)

    @property
    def has_template(self) -> bool:
        return bool(getattr(self.tokenizer, "chat_template", None))

    @property
    def folds_system(self) -> bool:
        return bool(self.system_fold)

    def _render(self, messages: list[dict], tools, generation_prompt: bool) -> str:
        # The compiled template, called as apply_chat_template calls it (same globals, same variables), without
        # its per-call deep copy of plain data: incremental masks render each conversation several times.
        key = bool(tools)
        if key not in self._compiled:
            from transformers.utils.chat_template_utils import _compile_jinja_template

            self._compiled[key] = _compile_jinja_template(self.tokenizer.get_chat_template(None, tools or None))
        return self._compiled[key].render(
            messages=messages,
            tools=tools or None,
            documents=None,
            add_generation_prompt=generation_prompt,
            **self._kwargs,
        )

    def _render_or_refuse(self, messages: list[dict], tools, generation_prompt: bool) -> str:
        try:
            return self._render(messages, tools, generation_prompt)
        except Exception as e:  # jinja2's TemplateError, TypeError ...: the template refused this row
            raise MaskError(_template_message(e)) from None

    def render(self, messages: list[dict], tools=None, *, generation_prompt: bool = False) -> str:
        """The template's text, with the system message where the module doc says. Raises MaskError with the
        template's own message when it cannot render the row."""
        msgs = template_messages(messages)
        if not msgs or msgs[0]["role"] != "system":
            return self._render_or_refuse(msgs, tools, generation_prompt)
        if self.system_fold:  # learned: LAST_USER_TURN was checked to give the template's own text where it writes one
            return self._render_or_refuse(fold_system(msgs, self.system_fold), tools, generation_prompt)
        try:
            text = self._render(msgs, tools, generation_prompt)
        except Exception as first:  # no system role: fold it into the first user turn
            try:
                text = self._render(fold_system(msgs, FIRST_USER_TURN), tools, generation_prompt)
            except Exception:
                raise MaskError(_template_message(first)) from None
            self.system_fold = FIRST_USER_TURN
            return text
        if not _drops_system(msgs, text) or text != self._render_or_refuse(msgs[1:], tools, generation_prompt):
            return text  # the template writes the system message (the second check: it may write it transformed)
        self.system_fold = self._where_dropped_system_goes(msgs, tools)
        return self._render_or_refuse(fold_system(msgs, self.system_fold), tools, generation_prompt)

    def turn_format(self) -> TurnFormat:
        """What the template writes around an assistant reply (see TurnFormat), learned once from a probe."""
        if self._turn_format is None:
            self._turn_format = _probe_turn_format(self)
        return self._turn_format

    def _where_dropped_system_goes(self, msgs: list[dict], tools) -> str:
        """LAST_USER_TURN when the template itself writes the system message there once the conversation ends on
        that turn (its render through the last user turn, with the generation prompt, starts the folded row);
        else FIRST_USER_TURN."""
        users = [i for i, m in enumerate(msgs) if m.get("role") == "user"]
        if not users:
            return FIRST_USER_TURN
        try:
            native = self._render(msgs[: users[-1] + 1], tools, True)
            folded = self._render(fold_system(msgs, LAST_USER_TURN), tools, False)
        except Exception:
            return FIRST_USER_TURN
        return LAST_USER_TURN if not _drops_system(msgs, native) and folded.startswith(native) else FIRST_USER_TURN


@dataclass(frozen=True)
class TurnFormat:
    """What a template writes around an assistant reply, beyond the reply itself.

    lead: text the model writes before the reply, after the generation prompt (Mistral v0.3's space: its prompt
          ends with "[/INST]" and a reply is rendered as "[/INST] reply</s>"); usually "".
    end:  the end-of-turn text after a reply, the same after a middle reply and after the last one, less
          trailing whitespace ("</s>", "<|im_end|>", "<end_of_turn>", "<|eot_id|>", Phi-3.5's "<|end|>")."""

    lead: str
    end: str


PROBE = ("Probe question one.", "Probe answer one.", "Probe question two.", "Probe answer two.")


def _probe_turn_format(renderer: ChatRenderer) -> TurnFormat:
    u1, a1, u2, a2 = PROBE
    msgs = [
        {"role": "user", "content": u1},
        {"role": "assistant", "content": a1},
        {"role": "user", "content": u2},
        {"role": "assistant", "content": a2},
    ]
    try:
        prompt = renderer._render(msgs[:1], None, True)
        full = renderer._render(msgs, None, False)
    except Exception as e:
        raise MaskError(_template_message(e)) from None
    spots = [full.find(text) for text in PROBE]
    if min(spots) < 0 or spots != sorted(spots) or prompt.rfind(u1) < 0:
        raise MaskError("the chat template does not write a plain conversation's messages in order")
    gen_tail = prompt[prompt.rfind(u1) + len(u1) :]
    between = full[spots[0] + len(u1) : spots[1]]
    lead = between[len(gen_tail) :] if between.startswith(gen_tail) else ""
    after_middle, after_last = full[spots[1] + len(a1) : spots[2]], full[spots[3] + len(a2) :]
    return TurnFormat(lead, _common_token_prefix(renderer.tokenizer, after_middle, after_last).rstrip())


def _common_token_prefix(tokenizer, a: str, b: str) -> str:
    """The longest run of whole tokens both texts start with (a character prefix could end inside a token:
    Phi-3.5 writes "<|end|>\n<|user|>" and "<|end|>\n<|endoftext|>")."""
    if not getattr(tokenizer, "is_fast", False):
        raise MaskError(SLOW_TOKENIZER)
    ea = tokenizer(a, add_special_tokens=False, return_offsets_mapping=True)
    eb = tokenizer(b, add_special_tokens=False, return_offsets_mapping=True)
    end = 0
    for (ta, (sa, fa)), (tb, (sb, fb)) in zip(
        zip(ea["input_ids"], ea["offset_mapping"]), zip(eb["input_ids"], eb["offset_mapping"])
    ):
        if ta != tb or (sa, fa) != (sb, fb):
            break
        end = fa
    return a[:end]


def _drops_system(msgs: list[dict], text: str) -> bool:
    """Whether the render lost the system message: its text occurs no more often than the other messages hold it."""
    content = msgs[0].get("content")
    if not isinstance(content, str) or not content.strip():
        return False
    needle = content.strip()
    elsewhere = sum(m["content"].count(needle) for m in msgs[1:] if isinstance(m.get("content"), str))
    return text.count(needle) <= elsewhere


def template_messages(messages: list[dict]) -> list[dict]:
    """Messages as templates expect them: no tunedeck keys, no None values, and a content string on every
    message (an assistant turn that only calls tools has none, and many templates read it anyway)."""
    out = []
    for m in messages:
        msg = {k: v for k, v in m.items() if v is not None and k != "weight"}
        msg.setdefault("content", "")
        if msg.get("tool_calls"):
            msg["tool_calls"] = [_call_with_dict_arguments(c) for c in msg["tool_calls"]]
        out.append(msg)
    return out


def _call_with_dict_arguments(call: dict) -> dict:
    """Templates write arguments with `| tojson`: a JSON string would be quoted twice."""
    fn = call.get("function") if isinstance(call.get("function"), dict) else None
    args = (fn or call).get("arguments")
    if isinstance(args, str):
        try:
            parsed = json.loads(args)
        except json.JSONDecodeError:
            return call
        if fn is not None:
            return {**call, "function": {**fn, "arguments": parsed}}
        return {**call, "arguments": parsed}
    return call


def fold_system(messages: list[dict], into: str = FIRST_USER_TURN) -> list[dict]:
    """The system message joined to the first (or last) user turn, as "system\\n\\nuser" (Mistral's own join)."""
    system, rest = messages[0], list(messages[1:])
    users = [i for i, m in enumerate(rest) if m.get("role") == "user"]
    if not users:
        return [{"role": "user", "content": system.get("content", "")}] + rest
    i = users[-1] if into == LAST_USER_TURN else users[0]
    rest[i] = {**rest[i], "content": f"{system.get('content', '')}\n\n{rest[i].get('content', '')}"}
    return rest


def _template_message(exc: Exception) -> str:
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
    return f"the chat template cannot render this row ({type(exc).__name__}: {first})"
