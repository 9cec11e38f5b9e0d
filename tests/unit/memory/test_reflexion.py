from memory.reflexion import lesson_record, lessons_from_task


def run(checks: list[dict[str, object]], error: str = "") -> dict[str, object]:
    return {"checks": checks, "error": error}


def check(name: str, source: str, passed: bool, error: str = "") -> dict[str, object]:
    return {"name": name, "source": source, "passed": passed, "error": error}


def test_only_confirmed_lessons_are_kept() -> None:
    runs = [
        run([check("f(1) == 2", "spec", False, "f(1) returned 3, expected 2")]),
        run([check("f(1) == 2", "spec", True), check("f(0) == 0", "model", False, "f(0) bad")]),
        run([check("f(9) == 1", "model", True)]),
    ]
    reviews = [{"claims": ["f(0) == 0"]}, {"claims": ["f(9) == 1"]}]
    lessons = lessons_from_task(runs, reviews, ["use a loop"])
    kinds = [kind for kind, _, _ in lessons]
    texts = " | ".join(text for _, text, _ in lessons)
    assert kinds == ["test_failure", "critique", "critique"]
    assert "f(1) returned 3, expected 2" in texts
    assert "f(0) bad" in texts, "a reviewer claim that failed when run is a real bug"
    assert "f(9)" not in texts, "a refuted claim is never stored"
    assert "use a loop" in texts


def test_a_clean_task_teaches_nothing() -> None:
    assert lessons_from_task([run([check("f(1) == 2", "spec", True)])], [], []) == []


def test_a_crash_is_a_lesson_too() -> None:
    lessons = lessons_from_task([run([], error="NameError: name 're' is not defined")], [], [])
    assert lessons[0][0] == "test_failure" and "NameError" in lessons[0][1]


def test_lesson_records_name_the_task_and_are_idempotent() -> None:
    goal = "Write slugify(title) that makes URL slugs.\n>>> slugify('A B')\n'a-b'"
    one = lesson_record(goal, "x  y", kind="critique", tenant="t", task_id="k", importance=0.7)
    two = lesson_record(goal, "x  y", kind="critique", tenant="t", task_id="k", importance=0.7)
    assert one.text.startswith("Task like: ") and "slugify" in one.text
    assert one.text.endswith("Lesson: x y")
    assert one.id == two.id
