"""The rubric judge checked against people: agreement with review labels on the same examples.

A model judge is only worth its verdicts if it grades as people do. When a person labelled an
example in review (engine/gate/reviews.py: "understandable" or "weird" call it a failure, "acceptable"
a pass the check got wrong) and the rubric judge graded the same output, the two calls form a pair;
the gate reports the share of pairs that agree and Cohen's kappa (agreement beyond chance), with
n, and warns below [gate] min_judge_agreement.
"""

from __future__ import annotations


def cohen_kappa(pairs: list[tuple[bool, bool]]) -> float | None:
    """Cohen's kappa of two raters' pass/fail calls; None when chance agreement is already total."""
    n = len(pairs)
    if not n:
        return None
    po = sum(a == b for a, b in pairs) / n
    pa, pb = sum(a for a, _ in pairs) / n, sum(b for _, b in pairs) / n
    pe = pa * pb + (1 - pa) * (1 - pb)
    return None if pe >= 1 - 1e-12 else (po - pe) / (1 - pe)


def judge_agreement(records: list[dict], labels: dict[str, str]) -> dict | None:
    """The rubric judge against review labels on the same examples: {"n", "agree", "share", "kappa"}.

    `labels` maps example id to its review label; a person calls an example a pass when they label it
    "acceptable" and a failure when "understandable" or "weird". None when no example has both."""
    pairs = []
    for r in records:
        label = labels.get(r["id"])
        verdicts = [
            c.get("pass") for c in r.get("checks", []) if c.get("type") == "rubric" and c.get("pass") is not None
        ]
        if label is None or not verdicts:
            continue
        pairs.append((all(verdicts), label == "acceptable"))
    if not pairs:
        return None
    agree = sum(a == b for a, b in pairs)
    kappa = cohen_kappa(pairs)
    return {
        "n": len(pairs),
        "agree": agree,
        "share": round(agree / len(pairs), 4),
        "kappa": None if kappa is None else round(kappa, 4),
    }


def agreement_warning(agreement: dict | None, minimum: float) -> str | None:
    if agreement is None or agreement["share"] >= minimum - 1e-9:
        return None
    kappa = "undefined" if agreement["kappa"] is None else f"{agreement['kappa']:.2f}"
    return (
        f"the rubric judge agrees with people on {agreement['agree']} of {agreement['n']} reviewed examples "
        f"({agreement['share']:.0%}, Cohen's kappa {kappa}), below gate.min_judge_agreement {minimum:.0%}: "
        "check the rubric before trusting its verdicts"
    )
