"""The eval gate: eval sets, checks, generation, the runner, rules and verdicts, records, reviews, playground."""
