"""How far the reviewer judge can be trusted, and the rule that follows from it.

    strategos eval --judge [--out FILE]

The judge (`eval.llm_judge`) runs over a hand-labelled set (`eval/datasets/reviewer_questions.json`:
goal, code, the reviewer's remark, a person's "sensible?" and why) and its verdicts are compared
with the labels: accuracy, Cohen's kappa (agreement beyond what the two label rates give by
chance) and the confusion counts. A missing verdict (the model gave no valid answer) counts as the
wrong answer: a judge that cannot answer must not look better for it.

The rule: the judge's score counts in a trajectory's pass/fail only when the measured agreement
is good enough (`KAPPA_THRESHOLD` over at least `MIN_ITEMS` labelled items); otherwise it is
reported as advisory and kept out of pass/fail.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from langchain_core.language_models import BaseChatModel
from rich.console import Console
from rich.table import Table

from eval.datasets.records import load_records
from eval.llm_judge import RemarkJudge

__all__ = [
    "AGREEMENT_FILE",
    "KAPPA_THRESHOLD",
    "JudgeStatus",
    "LABELLED",
    "MIN_ITEMS",
    "Labelled",
    "agreement",
    "agreement_table",
    "judge_status",
    "load_agreement",
    "load_labelled",
    "measure_agreement",
    "row_passed",
]

LABELLED = Path(__file__).parent / "datasets" / "reviewer_questions.json"
AGREEMENT_FILE = Path(__file__).parents[1] / "bench" / "results" / "judge-agreement.json"
KAPPA_THRESHOLD = 0.6
"""Cohen's kappa from which the judge's score may decide pass/fail ("substantial" agreement)."""
MIN_ITEMS = 20
"""Fewer labelled items than this measure nothing the rule can rely on."""

JudgeStatus = Literal["counted", "advisory"]


@dataclass(frozen=True)
class Labelled:
    """One hand-labelled remark."""

    id: str
    goal: str
    code: str
    remark: str
    sensible: bool
    why: str


def load_labelled(path: Path = LABELLED) -> list[Labelled]:
    """The committed labelled set (ValueError naming the item when one is malformed)."""
    return load_records(path, Labelled, "labelled item")


def agreement(labels: Sequence[bool], verdicts: Sequence[bool | None]) -> dict[str, Any]:
    """Accuracy, Cohen's kappa and confusion counts ("positive" = sensible).

    A None verdict is scored as the opposite of the label. Kappa is (po - pe) / (1 - pe); when
    chance agreement is already total (pe == 1: both raters give one answer throughout), it is
    1 for full agreement and 0 otherwise.
    """
    if len(labels) != len(verdicts):
        raise ValueError("one verdict per label")
    judged = [(not label) if v is None else v for label, v in zip(labels, verdicts, strict=True)]
    pairs = list(zip(labels, judged, strict=True))
    confusion = {
        "true_positive": sum(h and j for h, j in pairs),
        "false_positive": sum(j and not h for h, j in pairs),
        "false_negative": sum(h and not j for h, j in pairs),
        "true_negative": sum(not h and not j for h, j in pairs),
    }
    n = len(pairs)
    if n == 0:
        return {"items": 0, "accuracy": 0.0, "kappa": 0.0, "no_verdict": 0, "confusion": confusion}
    observed = (confusion["true_positive"] + confusion["true_negative"]) / n
    human_yes, judge_yes = sum(labels) / n, sum(judged) / n
    chance = human_yes * judge_yes + (1 - human_yes) * (1 - judge_yes)
    kappa = (observed - chance) / (1 - chance) if chance < 1 else float(observed == 1)
    return {
        "items": n,
        "accuracy": round(observed, 3),
        "kappa": round(kappa, 3),
        "no_verdict": sum(v is None for v in verdicts),
        "confusion": confusion,
    }


def judge_status(found: Mapping[str, Any] | None) -> JudgeStatus:
    """Whether the judge's score may count in pass/fail, from a measured agreement."""
    if not found:
        return "advisory"
    enough = int(found.get("items", 0)) >= MIN_ITEMS
    return "counted" if enough and float(found.get("kappa", 0.0)) >= KAPPA_THRESHOLD else "advisory"


def load_agreement(path: Path = AGREEMENT_FILE) -> dict[str, Any] | None:
    """The committed agreement measurement (None when it was never measured)."""
    if not path.is_file():
        return None
    found: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return found


def row_passed(row: Mapping[str, Any], status: JudgeStatus) -> bool:
    """Whether a trajectory row passes.

    It passes when it ended as the reference says with valid and safe calls and, only when the
    judge is trusted (`status == "counted"`), no reviewer remark the judge found senseless.
    """
    passed = bool(row["success"] and row["tool_validity"] and row["safety"])
    verdict = row.get("judge")
    if status == "counted" and verdict and verdict.get("score") is not None:
        passed = passed and bool(verdict["score"])
    return passed


async def measure_agreement(
    items: Sequence[Labelled], model: BaseChatModel, console: Console | None = None
) -> dict[str, Any]:
    """Run the judge over `items` and compare with the labels (the results file's content)."""
    judge = RemarkJudge(model)
    rows = []
    started = time.monotonic()
    for index, item in enumerate(items, 1):
        if console is not None:
            console.print(f"[{index}/{len(items)}] {item.id} …", highlight=False)
        verdict = await judge(item.goal, item.code, item.remark)
        rows.append(
            {
                "id": item.id,
                "label": item.sensible,
                "judge": verdict["score"],
                "reason": verdict["comment"],
            }
        )
    found = agreement([item.sensible for item in items], [row["judge"] for row in rows])
    found |= {
        "prompt": judge.prompt.id,
        "threshold": {"kappa": KAPPA_THRESHOLD, "items": MIN_ITEMS},
        "usage": dict(judge.model.usage),
        "wall_s": round(time.monotonic() - started, 1),
    }
    found["status"] = judge_status(found)
    return {**found, "rows": rows}


def agreement_table(found: Mapping[str, Any]) -> Table:
    """The agreement as the terminal shows it."""
    table = Table(title=f"reviewer judge vs. labels ({found.get('model', '?')}, {found['prompt']})")
    for column in ("item", "label", "judge", "agree"):
        table.add_column(column, no_wrap=column == "item")
    for row in found["rows"]:
        verdict = "-" if row["judge"] is None else str(row["judge"]).lower()
        table.add_row(
            row["id"],
            str(row["label"]).lower(),
            verdict,
            "yes" if row["judge"] == row["label"] else "no",
        )
    table.caption = (
        f"accuracy {found['accuracy']:.2f}, kappa {found['kappa']:.2f} over {found['items']} "
        f"items: the judge's score is {found['status']}"
    )
    return table
