"""DPO and KTO rows as the token ids TRL's trainers take, rendered and masked exactly as SFT rows are.

TRL renders a row's prompt alone (with the generation prompt) and the prompt followed by an answer, and
takes the answer to start where the two token lists part. Under a template that moves turns that point is
wrong: Mistral's writes the system message into the prompt-alone render (its last user turn) and drops it
from prompt+answer, so the lists part inside the user's turn and the "answer" TRL trains holds the user's
text. Here each answer is rendered once after its prompt through loss_masks.MaskEncoder (the same system
folding, the same ways of finding the replies, the same checks as SFT), and the ids are split where the
answer's first trained token starts: the prompt is what the model reads, the answer what it is scored on,
so a template that moves the system turn gives DPO the prompt text SFT trains with and the gate asks with.

The answer runs from its first trained token to its last (the reply and its end-of-turn; whitespace the
template writes after it does not train, as in SFT). An answer of several turns keeps what lies between
them, as TRL's own split does. Chosen and rejected must share their prompt tokens.
"""

from __future__ import annotations

from tunedeck.engine.data.loss_masks import OR_EVERY_TOKEN, Encoded, MaskEncoder, MaskError


def answer_conversation(row: dict, answer_key: str) -> dict:
    """A preference or KTO row's prompt and one answer as a chat row: assistant turns of the prompt stay as
    context and never train (weight 0), the answer's turns train."""
    prompt = [{**m, "weight": 0} if m.get("role") == "assistant" else m for m in row.get("prompt") or []]
    return {"messages": prompt + list(row[answer_key]), "tools": row.get("tools")}


def split_at_answer(encoded: Encoded, key: str) -> tuple[list[int], list[int]]:
    """(prompt ids, answer ids) of one rendered prompt+answer: the answer from its first trained token to its last."""
    trained = [i for i, bit in enumerate(encoded.mask) if bit]
    if not trained:
        raise MaskError(f"{key}: the answer has no token to train on")
    return encoded.input_ids[: trained[0]], encoded.input_ids[trained[0] : trained[-1] + 1]


def dpo_ids(encoder: MaskEncoder, row: dict) -> dict:
    """{"prompt_ids", "chosen_ids", "rejected_ids"} of a preference row (TRL DPOTrainer's tokenised columns)."""
    prompt, chosen = split_at_answer(encoder.encode(answer_conversation(row, "chosen")), "chosen")
    prompt_r, rejected = split_at_answer(encoder.encode(answer_conversation(row, "rejected")), "rejected")
    if prompt != prompt_r:
        raise MaskError(
            "the chat template renders the prompt differently before the chosen and the rejected answer, "
            "so the two cannot share one prompt"
        )
    return {"prompt_ids": prompt, "chosen_ids": chosen, "rejected_ids": rejected}


def kto_ids(encoder: MaskEncoder, row: dict) -> dict:
    """{"prompt_ids", "completion_ids", "label"} of a KTO row (TRL KTOTrainer's tokenised columns). MaskEncoder renders
    chat rows as answer_conversation does; raw string rows are prompt, then completion and eos, as TRL tokenises
    them."""
    prompt, completion = split_at_answer(encoder.encode({k: v for k, v in row.items() if k != "label"}), "completion")
    return {"prompt_ids": prompt, "completion_ids": completion, "label": bool(row["label"])}


def preference_ids(encoder: MaskEncoder, row: dict) -> dict:
    """The tokenised columns of a DPO ("chosen") or KTO ("label") row. A MaskError does not offer SFT's way out
    (data.assistant_only_loss = "off"): DPO and KTO score the answers after the prompt, always."""
    try:
        return dpo_ids(encoder, row) if "chosen" in row else kto_ids(encoder, row)
    except MaskError as e:
        raise MaskError(str(e).replace(OR_EVERY_TOKEN, "")) from None


def is_preference_row(row: dict) -> bool:
    return "chosen" in row or "label" in row


def encode_preference_rows(rows: list[dict], tokenizer) -> tuple[list[dict], list[int]]:
    """Rows as TRL's DPO or KTO trainer gets them, and the indices of rows the template could not render.
    The prompt is always masked (data.assistant_only_loss does not apply: DPO and KTO score the answers)."""
    encoder = MaskEncoder(tokenizer, assistant_only=True)
    out, failed = [], []
    for i, row in enumerate(rows):
        try:
            out.append(preference_ids(encoder, row))
        except MaskError:
            failed.append(i)
    return out, failed
