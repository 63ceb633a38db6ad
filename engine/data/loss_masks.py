"""Which tokens of a canonical row train, under the model's own chat template, markers or not.

One computation serves the trainer (it gets these input ids and masks, pre-tokenised), DPO and KTO
rows (engine/data/preference_tokens.py) and `tunedeck inspect` (it counts them), so they agree token
for token.

Chat rows ({"messages", "tools"?}): the replies that train are every assistant turn unless it carries
"weight": 0 (axolotl's "training": false reads as weight 0). Their characters are found in the render
of the whole conversation and mapped to tokens through the encoding's character-to-token map. Two ways
to find them, the first that holds:
1. Incremental (the structural one): for each trained turn, the conversation before it with the
   generation prompt, and the conversation through it. What the turn adds between the two is its
   reply and its end-of-turn marker (trailing whitespace after the marker does not train, nor does
   text a template writes only at the very end of a conversation, such as Phi-3.5's eos). It holds
   where the render of a longer conversation starts with the render of a shorter one, and covers
   everything such a template writes for a turn (tool calls included).
2. One render: a template that rewrites earlier turns as the conversation grows (Mistral's moves the
   system prompt into the last user turn) fails 1. Each reply is then located in the one render of
   the whole conversation, in message order: its text (as written, or trimmed, as templates that trim
   write it), the text the template writes before it after the generation prompt, and the end-of-turn
   text after it (ChatRenderer.turn_format). The tokens masked in are then checked to cover exactly
   those characters: no more, no fewer. A row where this fails (a reply the template transforms, a
   tool call, a token across the reply's edge) is reported (REWRITES), never guessed; under
   data.assistant_only_loss = "auto" such data trains every token, with a note.
Nothing else trains: system prompt, user turns, tool results, role headers.

Templates without a system role get the system message folded into the first user turn; templates that
write it only into a conversation's last user turn get it folded there (chat_render.py); the same folding
applies to the gate's and the playground's prompts (`render_prompt`).

Masking modes (data.assistant_only_loss): auto and on train the assistant replies (or the
completion) only; off trains every token. Plain {"text"} rows train every token; string
prompt/completion rows that are not rendered with the template train the completion and eos.
"""

from __future__ import annotations

from dataclasses import dataclass

from tunedeck.engine.data.chat_render import (  # noqa: F401  (ChatRenderer, MaskError: the gate imports them here)
    FIRST_USER_TURN,
    LAST_USER_TURN,
    SLOW_TOKENIZER,
    ChatRenderer,
    MaskError,
    fold_system,
    template_messages,
)

ASSISTANT_REPLIES = "assistant replies and their end-of-turn tokens (incremental render of the chat template)"
ONE_RENDER = (
    "assistant replies and their end-of-turn tokens (located in one render of each conversation: the "
    "chat template rewrites earlier turns)"
)
COMPLETION_ONLY = "completion only (the prompt is masked)"

REWRITES = "rewrites earlier turns"  # in the message of a MaskError for replies that cannot be located exactly
OR_EVERY_TOKEN = ', or set data.assistant_only_loss = "off" to train on every token'  # SFT's way out, not DPO's


@dataclass
class Encoded:
    input_ids: list[int]
    mask: list[int]  # 1 where the token trains

    @property
    def trainable(self) -> int:
        return sum(self.mask)


def trained_turns(messages: list[dict]) -> list[int]:
    return [i for i, m in enumerate(messages) if m.get("role") == "assistant" and m.get("weight", 1) != 0]


class Rewrites(MaskError):
    """The template rewrites earlier turns: the incremental render cannot find the replies (method 2 may)."""


def reply_spans(renderer: ChatRenderer, messages: list[dict], tools=None) -> tuple[str, list[tuple[int, int]], bool]:
    """The rendered conversation, the character spans of the replies that train, and whether they were located
    in one render (method 2 of the module doc, checked token by token) rather than incrementally."""
    full = renderer.render(messages, tools)
    prompts: dict[int, str] = {}  # turn -> the conversation before it with the generation prompt, rendered once
    try:
        return full, incremental_spans(renderer, messages, tools, full, prompts), False
    except Rewrites as rewrites:
        try:
            spans = located_spans(renderer, messages, tools, full, prompts)
            check_located(_encoding(renderer.tokenizer, full), full, spans)
            return full, spans, True
        except MaskError as why:
            raise MaskError(
                f"{rewrites}, nor located in one render of the whole conversation ({why}); set "
                f"model.chat_template to a template that keeps earlier turns as they are{OR_EVERY_TOKEN}"
            ) from None


def incremental_spans(
    renderer: ChatRenderer, messages: list[dict], tools, full: str, prompts: dict[int, str] | None = None
) -> list[tuple[int, int]]:
    spans = []
    for i in trained_turns(messages):
        before = _prompt(renderer, messages, tools, i, prompts)
        through = (
            full
            if i == len(messages) - 1 or not full.startswith(before)
            else _without_closing(renderer.tokenizer, renderer.render(messages[: i + 1], tools), full)
        )
        if not through.startswith(before) or not full.startswith(through):
            raise Rewrites(
                f"the chat template {REWRITES} as the conversation grows (turn {i} renders differently "
                "once later turns follow), so the replies cannot be found by rendering it turn by turn"
            )
        end = len(through.rstrip())
        if end > len(before):
            spans.append((len(before), end))
    return spans


def located_spans(
    renderer: ChatRenderer, messages: list[dict], tools, full: str, prompts: dict[int, str] | None = None
) -> list[tuple[int, int]]:
    """Each trained reply's characters in `full`, found in message order: a cursor moves past every message found,
    so a reply is never matched inside an earlier turn. The system message is not followed (templates move it);
    user and tool turns move the cursor where their text occurs as written.

    A reply is its text (as written, or trimmed) with the template's lead before it and end-of-turn after it
    (ChatRenderer.turn_format). Where the conversation before the turn, with the generation prompt, still starts
    the render, the span starts where that prompt ends, as in the incremental method (what the template writes
    between the prompt and the reply, such as Qwen3's empty think block, is the model's to write); the last
    message's span runs to the end of the render less trailing whitespace, as in the incremental method."""
    fmt = renderer.turn_format()
    trained = set(trained_turns(messages))
    spans, cursor = [], 0
    for i, m in enumerate(messages):
        role, content = m.get("role"), m.get("content")
        if role == "system":
            continue
        if role != "assistant":
            text = content.strip() if isinstance(content, str) else ""
            at = full.find(text, cursor) if text else -1
            cursor = at + len(text) if at >= 0 else cursor
            continue
        if m.get("tool_calls") or not isinstance(content, str):
            if i in trained:
                raise MaskError(
                    f"turn {i} calls tools or has no text reply, and what the template writes for it cannot be located"
                )
            continue
        for text in dict.fromkeys((content, content.strip())):  # as written, then trimmed (Gemma-3, Mistral v0.3)
            needle = fmt.lead + text + fmt.end
            at = full.find(needle, cursor)
            if at >= 0:
                break
        else:
            raise MaskError(
                f"turn {i}'s reply followed by {fmt.end!r} does not occur in the render after the turns "
                "before it (the template changes the reply's text)"
            )
        start, end = at, at + len(needle)
        if i in trained:
            prompt = _prompt(renderer, messages, tools, i, prompts)
            if full.startswith(prompt) and cursor <= len(prompt) <= at:
                start = len(prompt)
            if i == len(messages) - 1:
                end = max(end, len(full.rstrip()))
            if end > start:
                spans.append((start, end))
        cursor = at + len(needle)
    return spans


def _prompt(renderer: ChatRenderer, messages: list[dict], tools, i: int, prompts: dict[int, str] | None) -> str:
    """The conversation before turn i with the generation prompt ("" before the first), memoised in `prompts`."""
    if prompts is not None and i in prompts:
        return prompts[i]
    text = renderer.render(messages[:i], tools, generation_prompt=True) if i else ""
    if prompts is not None:
        prompts[i] = text
    return text


def check_located(encoding, text: str, spans: list[tuple[int, int]]) -> None:
    """The masked tokens cover exactly each located span's characters (what they decode to), no more, no fewer;
    raises MaskError where a token crosses a span's edge."""
    ranges = token_ranges(encoding, spans)
    if len(ranges) != len(spans):
        raise MaskError("a located reply has no token of its own")
    for (a, b), (first, last) in zip(spans, ranges):
        covered = (encoding.offsets[first][0], encoding.offsets[last - 1][1])
        if covered != (a, b):
            raise MaskError(
                f"the masked tokens cover {text[covered[0] : covered[1]]!r}, not the reply "
                f"{text[a:b]!r}: a token crosses the reply's edge"
            )


def _encoding(tokenizer, text: str):
    if not getattr(tokenizer, "is_fast", False):
        raise MaskError(SLOW_TOKENIZER)
    return tokenizer(text, add_special_tokens=False).encodings[0]


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
        self.located = False  # whether some row's replies were located in one render (the template rewrites turns)

    def texts_and_spans(self, row: dict) -> tuple[str, list[tuple[int, int]] | None, bool]:
        """(text, trained character spans or None for every token, add_special_tokens)."""
        if isinstance(row.get("completion"), list):  # KTO rows: the completion trains, as in TRL
            prompt = [{**m, "weight": 0} if m.get("role") == "assistant" else m for m in row.get("prompt") or []]
            row = {"messages": prompt + list(row["completion"]), "tools": row.get("tools")}
        if "messages" in row:
            if not self.renderer.has_template:
                raise MaskError(
                    "the tokenizer has no chat template, so chat rows cannot be rendered; "
                    "set model.chat_template to a Jinja template file"
                )
            if self.assistant_only:
                text, spans, located = reply_spans(self.renderer, row["messages"], row.get("tools"))
                self.located = self.located or located
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
        raise MaskError(SLOW_TOKENIZER)
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
    """ "file:line: why" for every row that cannot be rendered or masked; DPO and KTO rows are encoded as their trainer
    gets them (engine/data/preference_tokens.py), with the prompt masked whatever data.assistant_only_loss says."""
    from tunedeck.engine.data.preference_tokens import is_preference_row, preference_ids

    masking = encoder if encoder.assistant_only else None
    out = []
    for row, at in zip(rows, where):
        try:
            if is_preference_row(row):
                masking = masking or MaskEncoder(encoder.tokenizer, assistant_only=True)
                preference_ids(masking, row)
            elif "messages" in row or "completion" in row or "text" in row:
                encoder.texts_and_spans(row)
        except MaskError as e:
            out.append(f"{at}: {e}")
    return out


PREFERENCE_ANSWERS = (
    "the chosen and rejected answers and their end-of-turn tokens (preference pairs; the prompt, "
    "rendered as SFT renders it, is masked)"
)
KTO_COMPLETIONS = "the completions and their end-of-turn tokens (KTO; the prompt is masked)"


def describe_masking(rows: list[dict], encoder: MaskEncoder, data_format: str = "") -> str:
    """What the loss covers, in words, for the run record, `tunedeck show`, the monitor and exports."""
    if not rows:
        return ""
    first = rows[0]
    if "chosen" in first:
        words = PREFERENCE_ANSWERS
    elif "label" in first:
        words = KTO_COMPLETIONS
    elif not encoder.assistant_only:
        chat = "messages" in first or "completion" in first
        return 'all tokens (data.assistant_only_loss = "off")' + (
            ": the model also learns to write the prompts" if chat else ""
        )
    elif "text" in first:
        return "all tokens (plain text rows have no prompt to mask)"
    elif "messages" in first:
        words = ONE_RENDER if encoder.located else ASSISTANT_REPLIES
    else:
        return COMPLETION_ONLY + "; raw prompt and completion strings, no chat template"
    return words + system_fold_words(encoder.renderer.system_fold)


def system_fold_words(fold: str) -> str:
    if fold == FIRST_USER_TURN:
        return "; the template has no system role, so the system message is folded into the first user turn"
    if fold == LAST_USER_TURN:
        return (
            "; the template writes the system message only into a conversation's last user turn, so it is folded "
            "into the last user turn (the text the template itself gives at inference)"
        )
    return ""


def strings_as_chat(rows: list[dict]) -> list[dict]:
    """String prompt/completion rows as a user turn and an assistant reply (data.apply_chat_template); a KTO row
    keeps its label, as a conversational prompt and completion."""
    out = []
    for r in rows:
        if not (isinstance(r.get("completion"), str) and isinstance(r.get("prompt"), str)):
            out.append(r)
            continue
        user, reply = {"role": "user", "content": r["prompt"]}, {"role": "assistant", "content": r["completion"]}
        out.append(
            {"prompt": [user], "completion": [reply], "label": r["label"]}
            if "label" in r
            else {"messages": [user, reply]}
        )
    return out


def resolve_apply_chat_template(setting: str, tokenizer) -> str:
    """data.apply_chat_template as "on" or "off" for this tokenizer (auto: on when it has a chat template)."""
    if setting != "auto":
        return setting
    return "on" if getattr(tokenizer, "chat_template", None) else "off"
