"""One task of a to-do list."""

from dataclasses import dataclass


@dataclass
class Task:
    title: str
    done: bool = False

    def label(self) -> str:
        return ("[x] " if self.done else "[ ] ") + self.title
