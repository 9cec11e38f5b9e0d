"""The list of tasks, in the order they were added."""

from todo.model import Task


class TodoList:
    def __init__(self) -> None:
        self.tasks: list[Task] = []

    def add(self, title: str) -> Task:
        if not title.strip():
            raise ValueError("a task needs a title")
        task = Task(title.strip())
        self.tasks.append(task)
        return task

    def complete(self, title: str) -> None:
        for task in self.tasks:
            if task.title == title and not task.done:
                task.done = True
                return
        raise KeyError(title)

    def pending(self) -> list[Task]:
        return [task for task in self.tasks if not task.done]
