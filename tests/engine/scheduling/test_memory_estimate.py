"""The pre-launch memory estimate against figures known by hand."""

from __future__ import annotations

import pytest

from tunedeck.engine.scheduling.memory_estimate import GIB, ModelShape, estimate, shape_from_config

# Llama-2-7B: 32 layers, hidden 4096, MLP 11008, vocab 32000, 32 heads, untied: 6.74 B parameters.
LLAMA7B = ModelShape(hidden=4096, layers=32, intermediate=11008, vocab=32000, heads=32, kv_heads=32)


def test_parameter_count_of_a_7b_model():
    assert LLAMA7B.param_count() == pytest.approx(6.74e9, rel=0.01)


def test_bf16_weights_of_a_7b_model_are_about_13_gib():
    e = estimate(LLAMA7B, adapter="lora", precision="bf16", batch_size=1, seq_len=512)
    assert e.weights == LLAMA7B.param_count() * 2
    assert e.weights / GIB == pytest.approx(12.55, rel=0.01)  # 13.5 GB


def test_adam_state_full_versus_lora():
    full = estimate(LLAMA7B, adapter="none", precision="fp32", batch_size=1, seq_len=512)
    assert full.optimizer == 8 * LLAMA7B.param_count()  # two fp32 moments: about 50 GiB
    assert full.gradients == 4 * LLAMA7B.param_count()
    lora = estimate(LLAMA7B, adapter="lora", precision="bf16", batch_size=1, seq_len=512, lora_r=8)
    # r 8 on all linear layers of Llama-7B: 20.0 M trainable parameters (PEFT reports 19,988,480)
    assert lora.trainable_params == 19_988_480
    assert lora.optimizer == 8 * lora.trainable_params
    assert full.optimizer / lora.optimizer > 300


def test_qlora_weights_and_verdicts():
    q = estimate(LLAMA7B, adapter="qlora", precision="bf16", batch_size=1, seq_len=512, available=24 * GIB)
    assert q.weights / GIB == pytest.approx(3.45, rel=0.02)
    assert q.verdict == "fits"
    full = estimate(LLAMA7B, adapter="none", precision="bf16", batch_size=4, seq_len=2048, available=24 * GIB)
    assert full.verdict == "will not fit"
    assert estimate(LLAMA7B, adapter="lora", precision="bf16", batch_size=1, seq_len=512).verdict == "unknown"


def test_gradient_checkpointing_cuts_activations():
    on = estimate(LLAMA7B, adapter="lora", precision="bf16", batch_size=8, seq_len=2048, gradient_checkpointing=True)
    off = estimate(LLAMA7B, adapter="lora", precision="bf16", batch_size=8, seq_len=2048)
    assert off.activations > 5 * on.activations


def test_shape_from_a_transformers_config():
    from transformers import LlamaConfig

    cfg = LlamaConfig(
        hidden_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=512,
        vocab_size=500,
        tie_word_embeddings=True,
    )
    shape = shape_from_config(cfg)
    from transformers import LlamaForCausalLM

    exact = sum(p.numel() for p in LlamaForCausalLM(cfg).parameters())
    assert shape.param_count() == exact
