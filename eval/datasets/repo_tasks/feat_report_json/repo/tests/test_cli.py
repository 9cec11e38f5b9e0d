import contextlib
import io
import os
import tempfile

from sales.cli import main
from sales.summary import by_region, read_rows


def run(text, *options):
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "sales.txt")
        with open(path, "w") as handle:
            handle.write(text)
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            code = main([*options, path])
    return code, out.getvalue()


def test_text_report():
    code, out = run("north 10\nsouth 2.5\nnorth 1\n")
    assert code == 0
    assert out.splitlines() == ["sales: 3", "north: 11.00", "south: 2.50", "total: 13.50"]


def test_by_region_is_sorted():
    assert list(by_region(read_rows(["b 1", "a 2"]))) == ["a", "b"]
