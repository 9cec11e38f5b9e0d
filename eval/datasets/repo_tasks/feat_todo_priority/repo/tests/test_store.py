from todo.store import TodoList


def test_pending_in_insertion_order():
    todos = TodoList()
    todos.add("write")
    todos.add("read")
    todos.add("sleep")
    todos.complete("read")
    assert [task.title for task in todos.pending()] == ["write", "sleep"]


def test_label():
    todos = TodoList()
    task = todos.add(" call mum ")
    assert task.label() == "[ ] call mum"
