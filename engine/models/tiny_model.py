"""A tiny causal LM and tokenizer built locally, so the demo and the tests need no network.

Facts behind the choices (shared/notes/cpu-demo.md): spaces, single digits and punctuation are
pre-split into pieces of their own, so a name in the prompt and the same name inside a JSON answer
are the same tokens (otherwise a tiny model cannot learn to copy); initializer_range 0.1 because
LoRA on a random base stalls at 0.02; embeddings are tied, so no adapter goes on lm_head.
"""

from __future__ import annotations

from pathlib import Path

PAD, BOS, EOS = "<|pad|>", "<|im_start|>", "<|im_end|>"

# ChatML with {% generation %} markers: TRL's assistant_only_loss and
# return_assistant_tokens_mask find the assistant tokens through them.
CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'assistant' -%}"
    "{{ '<|im_start|>assistant\n' }}{% generation %}{{ message['content'] + '<|im_end|>' }}{% endgeneration %}"
    "{{ '\n' }}"
    "{%- else -%}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\n' }}{%- endif -%}"
)


def train_byte_level_bpe(texts: list[str], special_tokens: list[str], vocab_size: int = 2048):
    """A `tokenizers` byte-level BPE trained on `texts` (a fraction of a second), special tokens first."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(" ", behavior="isolated"),
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.Punctuation(behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(special_tokens),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return tok


def build_tiny_tokenizer(texts: list[str], vocab_size: int = 2048):
    """A byte-level BPE trained on `texts`, as a fast HF tokenizer with the ChatML template above."""
    from transformers import PreTrainedTokenizerFast

    tok = train_byte_level_bpe(texts, [PAD, BOS, EOS], vocab_size)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token=PAD, eos_token=EOS, bos_token=None, unk_token=None, model_max_length=512
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.padding_side = "left"  # decoder-only generation pads on the left
    return fast


def build_tiny_model(
    out_dir: str | Path,
    texts: list[str],
    *,
    hidden: int = 128,
    layers: int = 2,
    heads: int = 4,
    intermediate: int = 512,
    seed: int = 0,
    vocab_size: int = 2048,
) -> Path:
    """Save a randomly initialised Llama-style model and its tokenizer to `out_dir` (HF layout)."""
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tiny_tokenizer(texts, vocab_size=vocab_size)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        intermediate_size=intermediate,
        max_position_embeddings=512,
        tie_word_embeddings=True,
        initializer_range=0.1,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.generation_config = GenerationConfig(
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, do_sample=False, max_new_tokens=64
    )
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    return out
