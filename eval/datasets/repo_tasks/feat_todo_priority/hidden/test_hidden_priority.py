from todo.model import Task
from todo.store import TodoList


def test_task_priority_defaults_to_zero():
    assert Task("x").priority == 0
    assert Task("y", priority=3).priority == 3


def test_pending_highest_priority_first_stable():
    todos = TodoList()
    todos.add("a")
    todos.add("b", priority=2)
    todos.add("c")
    todos.add("d", priority=2)
    todos.add("e", priority=5)
    todos.complete("d")
    assert [task.title for task in todos.pending()] == ["e", "b", "a", "c"]


def test_add_returns_the_task_with_its_priority():
    todos = TodoList()
    assert todos.add("z", priority=1).priority == 1
    assert todos.add("w").priority == 0
