"""TRL's DPO and KTO trainers fed tunedeck's token ids (engine/data/preference_tokens.py).

TRL's preference trainers tokenise their datasets themselves (`_prepare_dataset`), from prompt and answer
text, splitting where the prompt's tokens and the prompt+answer's part; under a template that moves turns
that split lands inside the prompt. Datasets that already carry "prompt_ids" skip that tokenisation here and
keep only the steps of it that do not tokenise, as TRL 1.16 does them: rows whose prompt alone fills
max_length are dropped (keep-start truncation would leave no answer to score), and for KTO each completion
is also paired with its neighbour's prompt within a batch for the KL term ("KL_completion_ids": the
completions of each batch rotated by one).
"""

from __future__ import annotations


def pretokenized(trainer_cls):
    """`trainer_cls` (trl's DPOTrainer or KTOTrainer) accepting datasets of tunedeck's token ids."""

    class Pretokenized(trainer_cls):
        def _prepare_dataset(self, dataset, processing_class, args, dataset_name):
            if "prompt_ids" not in (dataset.column_names or []):
                return super()._prepare_dataset(dataset, processing_class, args, dataset_name)
            if args.max_length is not None and getattr(args, "truncation_mode", "keep_start") == "keep_start":
                dataset = dataset.filter(lambda row: len(row["prompt_ids"]) < args.max_length)
            if getattr(self, "calculate_KL", False):
                dataset = dataset.map(_with_kl_completions, batched=True, batch_size=args.per_device_train_batch_size)
            return dataset

    Pretokenized.__name__ = trainer_cls.__name__
    return Pretokenized


def _with_kl_completions(batch: dict) -> dict:
    completions = batch["completion_ids"]
    return {**batch, "KL_completion_ids": completions[-1:] + completions[:-1]}
