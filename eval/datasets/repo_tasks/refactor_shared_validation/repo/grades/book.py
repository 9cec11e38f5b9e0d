"""Scores per student."""


class GradeBook:
    def __init__(self) -> None:
        self.scores: dict[str, list[int]] = {}

    def record(self, student: str, value: object) -> None:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"score must be a whole number, got {value!r}")
        if not 0 <= value <= 100:
            raise ValueError(f"score must be between 0 and 100, got {value}")
        self.scores.setdefault(student, []).append(value)

    def average(self, student: str) -> float:
        marks = self.scores[student]
        return round(sum(marks) / len(marks), 1)
