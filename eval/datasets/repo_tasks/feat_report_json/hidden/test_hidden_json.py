import contextlib
import io
import json
import os
import tempfile

from sales.cli import main
from sales.summary import read_rows, summary_dict


def run(text, *options):
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "sales.txt")
        with open(path, "w") as handle:
            handle.write(text)
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            code = main([*options, path])
    return code, out.getvalue()


def test_json_option_prints_one_object():
    code, out = run("north 10\nsouth 2.5\nnorth 1\n", "--json")
    assert code == 0
    assert json.loads(out) == {
        "count": 3,
        "total": 13.5,
        "by_region": {"north": 11.0, "south": 2.5},
    }


def test_summary_dict_of_no_rows():
    assert summary_dict(read_rows([])) == {"count": 0, "total": 0, "by_region": {}}


def test_text_stays_the_default():
    code, out = run("east 1\n")
    assert out.splitlines() == ["sales: 1", "east: 1.00", "total: 1.00"]
