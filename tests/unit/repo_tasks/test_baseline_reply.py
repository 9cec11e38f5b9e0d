"""The baseline's reply parsing: the files a model writes out, however it names them."""

from __future__ import annotations

from eval.repo_baseline import changed_files, repo_prompt

FILES = {"shop/cart.py": "x = 1\n", "shop/pricing.py": "y = 2\n", "tests/test_cart.py": "t\n"}


def test_the_prompt_shows_the_goal_and_every_file_under_its_path() -> None:
    prompt = repo_prompt("make the failing test pass", FILES)
    assert prompt.startswith("Goal: make the failing test pass")
    for path, text in FILES.items():
        assert f"`{path}`\n```python\n{text.strip()}\n```" in prompt


def test_paths_above_the_block_in_the_usual_spellings() -> None:
    reply = (
        "Here is the fix.\n\n`shop/pricing.py`\n```python\ny = 3\n```\n"
        "### shop/cart.py\n```python\nx = 5\n```\n"
        "**File: shop/new_module.py**\n\n```py\nz = 1\n```\n"
    )
    assert changed_files(reply, FILES) == {
        "shop/pricing.py": "y = 3\n",
        "shop/cart.py": "x = 5\n",
        "shop/new_module.py": "z = 1\n",
    }


def test_a_path_in_a_first_line_comment_is_taken_and_dropped_from_the_file() -> None:
    reply = "```python\n# shop/pricing.py\ny = 4\n```"
    assert changed_files(reply, FILES) == {"shop/pricing.py": "y = 4\n"}


def test_blocks_without_a_usable_path_are_ignored() -> None:
    reply = (
        "```python\nprint('no path')\n```\n"
        "../outside.py\n```python\nimport os\n```\n"
        "/etc/evil.py\n```python\nimport os\n```\n"
    )
    assert changed_files(reply, FILES) == {}


def test_an_unclosed_last_block_still_counts() -> None:
    reply = "shop/cart.py\n```python\nx = 9\n"
    assert changed_files(reply, FILES) == {"shop/cart.py": "x = 9\n"}


def test_a_first_line_comment_wins_over_prose_naming_several_files() -> None:
    reply = "Change `shop/cart.py` and `shop/pricing.py`:\n```python\n# shop/pricing.py\ny = 6\n```"
    assert changed_files(reply, FILES) == {"shop/pricing.py": "y = 6\n"}
