"""Which tokens of a canonical row train, under the model's own chat template, markers or not.

One computation serves the trainer (it gets these input ids and masks, pre-tokenised) and
`tunedeck inspect` (it counts them), so the two agree token for token.

Chat rows ({"messages", "tools"?}) are rendered incrementally: for each assistant turn that trains
(every assistant turn unless it carries "weight": 0), the conversation before it with the
generation prompt, and the conversation through it. What the turn adds between the two is its
reply and its end-of-turn marker (trailing whitespace after the marker does not train, nor does
text a template writes only at the very end of a conversation, such as Phi-3.5's eos); those
characters are mapped to tokens through the encoding's character-to-token map. Nothing else trains: system
prompt, user turns, tool results, role headers. A template whose render of a longer conversation
does not start with its render of a shorter one rewrites earlier turns (it moves the system
prompt, drops reasoning); such a row cannot be masked and is reported, never guessed.

Templates without a system role (they raise on one) get the system message folded into the
first user turn, the usual practice; the same folding applies to the gate's and the
playground's prompts (`render_prompt`).

Masking modes (data.assistant_only_loss): auto and on train the assistant replies (or the
completion) only; off trains every token. Plain {"text"} rows train every token; string
prompt/completion rows that are not rendered with the template train the completion and eos.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

ASSISTANT_REPLIES = "assistant replies and their end-of-turn tokens (incremental render of the chat template)"
COMPLETION_ONLY = "completion only (the prompt is masked)"

REWRITES = "rewrites earlier turns"  # in the message of a MaskError for a template that is not prefix-preserving


class MaskError(ValueError):
    """One row cannot be rendered or masked; str() says why and what to do (no file or line: the caller adds them)."""


@dataclass
class Encoded:
    input_ids: list[int]
    mask: list[int]          # 1 where the token trains

    @property
    def trainable(self) -> int:
        return sum(self.mask)


@dataclass
class ChatRenderer:
    """The tokenizer's chat template as a renderer, with the fixes every caller needs in one place."""

    tokenizer: object
    folds_system: bool = False          # set once a row needed its system message folded into the first user turn
    _kwargs: dict = field(default_factory=dict)
    _compiled: dict = field(default_factory=dict)   # tools or not -> compiled Jinja template

    def __post_init__(self):
        self._kwargs = dict(self.tokenizer.special_tokens_map)

    @property
    def has_template(self) -> bool:
        return bool(getattr(self.tokenizer, "chat_template", None))

    def _render(self, messages: list[dict], tools, generation_prompt: bool) -> str:
        # The compiled template, called as apply_chat_template calls it (same globals, same variables), without
        # its per-call deep copy of plain data: incremental masks render each conversation several times.
        key = bool(tools)
        if key not in self._compiled:
            from transformers.utils.chat_template_utils import _compile_jinja_template

            self._compiled[key] = _compile_jinja_template(self.tokenizer.get_chat_template(None, tools or None))
        return self._compiled[key].render(messages=messages, tools=tools or None, documents=None,
                                          add_generation_prompt=generation_prompt, **self._kwargs)

    def render(self, messages: list[dict], tools=None, *, generation_prompt: bool = False) -> str:
        """The template's text; a template without a system role gets the system message folded into the
        first user turn. Raises MaskError with the template's own message when it cannot render the row."""
        msgs = template_messages(messages)
        if self.folds_system and msgs and msgs[0]["role"] == "system":
            msgs = fold_system(msgs)
        try:
            return self._render(msgs, tools, generation_prompt)
        except Exception as first:  # jinja2's TemplateError, TypeError ...: the template refused this row
            if msgs and msgs[0]["role"] == "system" and not self.folds_system:
                try:
                    text = self._render(fold_system(msgs), tools, generation_prompt)
                except Exception:
                    raise MaskError(_template_message(first)) from None
                self.folds_system = True
                return text
            raise MaskError(_template_message(first)) from None


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


def fold_system(messages: list[dict]) -> list[dict]:
    """The system message joined to the first user turn (for templates that have no system role)."""
    system, rest = messages[0], list(messages[1:])
    for i, m in enumerate(rest):
        if m.get("role") == "user":
            rest[i] = {**m, "content": f"{system.get('content', '')}\n\n{m.get('content', '')}"}
            return rest
    return [{"role": "user", "content": system.get("content", "")}] + rest


def _template_message(exc: Exception) -> str:
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
    return f"the chat template cannot render this row ({type(exc).__name__}: {first})"


def trained_turns(messages: list[dict]) -> list[int]:
    return [i for i, m in enumerate(messages) if m.get("role") == "assistant" and m.get("weight", 1) != 0]


def reply_spans(renderer: ChatRenderer, messages: list[dict], tools=None) -> tuple[str, list[tuple[int, int]]]:
    """The rendered conversation and the character spans of the replies that train (see the module doc)."""
    full = renderer.render(messages, tools)
    spans = []
    for i in trained_turns(messages):
        before = renderer.render(messages[:i], tools, generation_prompt=True) if i else ""
        through = full if i == len(messages) - 1 else _without_closing(renderer.tokenizer, renderer.render(messages[:i + 1], tools), full)
        if not through.startswith(before) or not full.startswith(through):
            raise MaskError(
                f"the chat template {REWRITES} as the conversation grows (turn {i} renders differently "
                "once later turns follow), so the assistant's replies cannot be located exactly; give each assistant "
                "turn its own row, set model.chat_template to a template that keeps earlier turns as they are, "
                "or set data.assistant_only_loss = \"off\" to train on every token")
        end = len(through.rstrip())
        if end > len(before):
            spans.append((len(before), end))
    return full, spans


def _without_closing(tokenizer, through: str, full: str) -> str:
    """`through` less what the template writes only at the end of a conversation (Phi-3.5 closes every
    render with eos): the last whole tokens of `through` that `full` has only at its very end."""
    if full.startswith(through):
        return through
    offsets = tokenizer(through, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    for start, _ in reversed(offsets):
        if start and full.startswith(through[:start]) and full.endswith(through[start:]):
            return through[:start]
    return through


class MaskEncoder:
    """Canonical rows to input ids and loss masks (assistant_only: data.assistant_only_loss is not "off")."""

    def __init__(self, tokenizer, assistant_only: bool = True):
        self.tokenizer = tokenizer
        self.renderer = ChatRenderer(tokenizer)
        self.assistant_only = assistant_only
        self.eos = tokenizer.eos_token

    def texts_and_spans(self, row: dict) -> tuple[str, list[tuple[int, int]] | None, bool]:
        """(text, trained character spans or None for every token, add_special_tokens)."""
        if isinstance(row.get("completion"), list):  # KTO rows: the completion trains, as in TRL
            prompt = [{**m, "weight": 0} if m.get("role") == "assistant" else m for m in row.get("prompt") or []]
            row = {"messages": prompt + list(row["completion"]), "tools": row.get("tools")}
        if "messages" in row:
            if not self.renderer.has_template:
                raise MaskError("the tokenizer has no chat template, so chat rows cannot be rendered; "
                                "set model.chat_template to a Jinja template file")
            if self.assistant_only:
                text, spans = reply_spans(self.renderer, row["messages"], row.get("tools"))
                return text, spans, False
            return self.renderer.render(row["messages"], row.get("tools")), None, False
        if "completion" in row:  # raw strings, as TRL tokenises them: prompt, then completion and eos
            prompt, completion = row["prompt"], self._with_eos(row["completion"])
            spans = [(len(prompt), len(prompt) + len(completion))] if self.assistant_only else None
            return prompt + completion, spans, True
        if "text" in row:
            return self._with_eos(row["text"]), None, True
        raise MaskError(f"not a canonical row: keys {sorted(row)}")

    def _with_eos(self, text: str) -> str:
        return text if not self.eos or text.endswith(self.eos) else text + self.eos

    def encode(self, row: dict) -> Encoded:
        text, spans, special = self.texts_and_spans(row)
        return encode_spans(self.tokenizer, text, spans, special)


def encode_spans(tokenizer, text: str, spans: list[tuple[int, int]] | None, add_special_tokens: bool) -> Encoded:
    """Token ids of `text` and a mask: a token trains when its first character lies in a span (all train: None)."""
    if spans is None:
        ids = list(tokenizer(text, add_special_tokens=add_special_tokens)["input_ids"])
        return Encoded(ids, [1] * len(ids))
    if not getattr(tokenizer, "is_fast", False):
        raise MaskError("a slow (Python) tokenizer cannot map text to tokens, so the loss cannot be masked; "
                        "use the model's fast tokenizer, or set data.assistant_only_loss = \"off\"")
    encoding = tokenizer(text, add_special_tokens=add_special_tokens).encodings[0]
    mask = [0] * len(encoding)
    for start, end in token_ranges(encoding, spans):
        mask[start:end] = [1] * (end - start)
    return Encoded(list(encoding.ids), mask)


def token_ranges(encoding, spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The token ranges [start, end) whose first character lies in each character span, for a `tokenizers`
    Encoding. Looks up only the span boundaries (reading every offset costs more than the tokenisation);
    tokens the tokenizer adds itself (a BOS) cover no characters and never train."""
    out = []
    for a, b in spans:
        first, last = encoding.char_to_token(a), encoding.char_to_token(b - 1)
        if first is None or last is None:  # a character no token covers: read the offsets
            starts = [s for s, e in encoding.offsets]
            ok = [s < e for s, e in encoding.offsets]
            idx = [i for i, s in enumerate(starts) if a <= s < b and ok[i]]
            out.extend((i, i + 1) for i in idx)
            continue
        if encoding.token_to_chars(first)[0] < a:  # a token that straddles the span's start is not the reply's
            first += 1
        if last >= first:
            out.append((first, last + 1))
    return out


def assistant_only_setting(setting: str) -> bool:
    """data.assistant_only_loss: auto and on mask to the replies (or completion); off trains every token."""
    return setting != "off"


def unmaskable_rows(rows: list[dict], where: list[str], encoder: MaskEncoder) -> list[str]:
    """"file:line: why" for every row that cannot be rendered or masked (preference and KTO rows are TRL's)."""
    out = []
    for row, at in zip(rows, where):
        if "messages" not in row and "completion" not in row and "text" not in row:
            continue
        if "label" in row:
            continue  # KTO rows: TRL tokenises them
        try:
            encoder.texts_and_spans(row)
        except MaskError as e:
            out.append(f"{at}: {e}")
    return out


def describe_masking(rows: list[dict], encoder: MaskEncoder, data_format: str = "") -> str:
    """What the loss covers, in words, for the run record, `tunedeck show`, the monitor and exports."""
    if not rows:
        return ""
    first = rows[0]
    if "chosen" in first:
        return "the chosen and rejected answers (preference pairs; TRL's DPO masks the prompt)"
    if "label" in first:
        return "the completions (KTO; TRL masks the prompt)"
    if not encoder.assistant_only:
        chat = "messages" in first or "completion" in first
        return "all tokens (data.assistant_only_loss = \"off\")" + (
            ": the model also learns to write the prompts" if chat else "")
    if "text" in first:
        return "all tokens (plain text rows have no prompt to mask)"
    if "messages" in first:
        words = ASSISTANT_REPLIES
        if encoder.renderer.folds_system:
            words += "; the template has no system role, so the system message is folded into the first user turn"
        return words
    return COMPLETION_ONLY + "; raw prompt and completion strings, no chat template"


def strings_as_chat(rows: list[dict]) -> list[dict]:
    """String prompt/completion rows as a user turn and an assistant reply (data.apply_chat_template)."""
    return [{"messages": [{"role": "user", "content": r["prompt"]}, {"role": "assistant", "content": r["completion"]}]}
            if isinstance(r.get("completion"), str) and isinstance(r.get("prompt"), str) else r for r in rows]


def resolve_apply_chat_template(setting: str, tokenizer) -> str:
    """data.apply_chat_template as "on" or "off" for this tokenizer (auto: on when it has a chat template)."""
    if setting != "auto":
        return setting
    return "on" if getattr(tokenizer, "chat_template", None) else "off"
