"""The gate generates with a LoRA checkpoint merged, and gives the base back bit for bit
(engine/gate/adapter_merge.py)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def adapters(tmp_path_factory, tiny_model_dir):
    """Two LoRA adapters with random B (each changes the outputs) on the tiny base, saved as checkpoints are."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    root = tmp_path_factory.mktemp("adapters")
    paths = []
    for k in (1, 2):
        torch.manual_seed(k)
        peft = get_peft_model(
            AutoModelForCausalLM.from_pretrained(tiny_model_dir),
            LoraConfig(r=8, lora_alpha=16, target_modules="all-linear", task_type="CAUSAL_LM", init_lora_weights=False),
        )
        peft.save_pretrained(root / f"a{k}")
        paths.append(root / f"a{k}")
    return paths


def load(tiny_model_dir, path, trainable=False):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    return PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(tiny_model_dir), str(path), adapter_name="a", is_trainable=trainable
    ).eval()


def base_weights(model):
    from peft.tuners.tuners_utils import BaseTunerLayer

    return [m.get_base_layer().weight for m in model.modules() if isinstance(m, BaseTunerLayer)]


def texts(model, tokenizer, prompts):
    from tunedeck.engine.gate.generate import generate

    return [g.text for g in generate(model, tokenizer, prompts, max_new_tokens=12, batch_size=4)]


def test_merged_generation_is_the_checkpoint_and_the_base_comes_back_exactly(tiny_model_dir, adapters, demo_rows):
    import torch
    from transformers import AutoTokenizer

    from tunedeck.engine.gate.adapter_merge import merge_refusal, merged_for_generation

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    prompts = [r["messages"][:-1] for r in demo_rows[:8]]
    model = load(tiny_model_dir, adapters[0])
    assert merge_refusal(model) is None
    tensors = [w.data for w in base_weights(model)]
    snapshot = [t.clone() for t in tensors]
    unmerged = texts(model, tok, prompts)
    ids = tok(["hello there"], return_tensors="pt")
    with torch.inference_mode():
        logits = model(**ids).logits
    with merged_for_generation(model) as m:
        assert all(layer.merged for layer in m.modules() if hasattr(layer, "merged_adapters"))
        assert texts(m, tok, prompts) == unmerged
        with torch.inference_mode():
            assert torch.allclose(m(**ids).logits, logits, atol=1e-5)
        assert not any(w.data_ptr() == t.data_ptr() for w, t in zip(base_weights(m), tensors))  # merged copies
    assert all(w.data_ptr() == t.data_ptr() for w, t in zip(base_weights(model), tensors))  # the loaded tensors
    assert all(torch.equal(t, s) for t, s in zip(tensors, snapshot))  # never W + d - d
    assert not any(layer.merged for layer in model.modules() if hasattr(layer, "merged_adapters"))

    # the next checkpoint, switched onto the same base as the gate's session does, says what it says loaded fresh
    model.load_adapter(str(adapters[1]), adapter_name="b", is_trainable=False)
    model.set_adapter("b")
    model.delete_adapter("a")
    with merged_for_generation(model) as m:
        switched = texts(m, tok, prompts)
    assert switched == texts(load(tiny_model_dir, adapters[1]), tok, prompts)


def test_what_is_not_merged(tiny_model_dir, adapters):
    import torch
    from transformers import AutoModelForCausalLM

    from tunedeck.engine.gate.adapter_merge import merge_refusal, merged_for_generation

    assert merge_refusal(AutoModelForCausalLM.from_pretrained(tiny_model_dir)) == "not an adapter model"
    assert merge_refusal(load(tiny_model_dir, adapters[0], trainable=True)) == "a model in training"
    half = load(tiny_model_dir, adapters[0]).to(torch.bfloat16)
    assert merge_refusal(half) == "weights not fp32 on CPU"

    broken = load(tiny_model_dir, adapters[0])  # a non-finite update: generated through the adapter, as it is
    lora = next(m for m in broken.modules() if hasattr(m, "lora_B"))
    lora.lora_B["a"].weight.data[0, 0] = float("nan")
    tensors = [w.data for w in base_weights(broken)]
    with merged_for_generation(broken) as m:
        assert not any(layer.merged for layer in m.modules() if hasattr(layer, "merged_adapters"))
    assert all(w.data_ptr() == t.data_ptr() and torch.equal(w, t) for w, t in zip(base_weights(broken), tensors))
