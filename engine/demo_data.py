"""The demo task: extract a person's name, age, city and job from a sentence into JSON.

Narrow, checkable, and learnable by a tiny model on CPU in about a minute; a base model with
random weights scores zero on it, so the gain the gate reports is unmistakable.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

FIRST = ["Maria", "John", "Aiko", "Omar", "Lena", "Carlos", "Priya", "Tom", "Sara", "Ivan", "Nadia", "Kofi",
         "Elena", "Ravi", "Mei", "Jonas", "Fatima", "Lucas", "Hana", "Diego", "Ines", "Yusuf", "Clara", "Noah"]
LAST = ["Lopez", "Smith", "Tanaka", "Haddad", "Berg", "Silva", "Patel", "Brown", "Novak", "Petrov", "Mensah",
        "Rossi", "Kim", "Weber", "Costa", "Ali", "Moreau", "Chen", "Jensen", "Garcia"]
CITY = ["Lisbon", "Boston", "Osaka", "Cairo", "Oslo", "Lima", "Pune", "Leeds", "Prague", "Kyiv", "Accra",
        "Turin", "Busan", "Munich", "Porto", "Dubai", "Lyon", "Xian", "Aarhus", "Quito"]
JOB = ["nurse", "teacher", "engineer", "baker", "pilot", "chef", "lawyer", "farmer", "painter", "dentist",
       "writer", "plumber", "doctor", "actor", "driver", "miner"]
TEMPLATES = [
    "{name}, {age}, lives in {city} and works as a {job}.",
    "{name} is a {age} year old {job} from {city}.",
    "Meet {name}: {job}, age {age}, based in {city}.",
    "In {city}, {name} ({age}) works as a {job}.",
    "{name} works as a {job} in {city} and is {age}.",
]
SYSTEM = "Extract the person's name, age, city and job as JSON."
# The base model's best prompt for the gate: say exactly what output is wanted.
BASE_PROMPT = (SYSTEM + ' Reply with one JSON object with keys "name", "age", "city", "job" and nothing else.')


def make_example(rng: random.Random) -> dict:
    person = {"name": f"{rng.choice(FIRST)} {rng.choice(LAST)}", "age": rng.randint(18, 79),
              "city": rng.choice(CITY), "job": rng.choice(JOB)}
    sentence = rng.choice(TEMPLATES).format(**person)
    return {"messages": [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": sentence},
        {"role": "assistant", "content": json.dumps(person)},
    ]}


def make_rows(n: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    return [make_example(rng) for _ in range(n)]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
    return path


def corpus(rows: list[dict]) -> list[str]:
    """Texts to train the tiny tokenizer on: every message plus the template's own words."""
    texts = [m["content"] for r in rows for m in r["messages"]]
    return texts + [BASE_PROMPT, "system user assistant", " ".join(FIRST + LAST + CITY + JOB)]


def make_eval_set(path: Path, n: int, seed: int) -> Path:
    """A fixed golden set in the gate's eval-set format: prompt messages, reference and checks."""
    rows = []
    for ex in make_rows(n, seed):
        msgs = ex["messages"]
        rows.append({"messages": msgs[:-1], "reference": msgs[-1]["content"],
                     "checks": ["json_valid", "json_equal"], "tags": ["task", "format"]})
    return write_jsonl(path, rows)
