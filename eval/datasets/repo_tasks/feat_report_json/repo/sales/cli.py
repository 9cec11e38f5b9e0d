"""`python -m sales.cli FILE`: a summary of the sales in FILE."""

import argparse
import sys

from sales.summary import by_region, grand_total, read_rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sales")
    parser.add_argument("path")
    args = parser.parse_args(argv)
    with open(args.path) as handle:
        rows = read_rows(handle.readlines())
    print(f"sales: {len(rows)}")
    for region, total in by_region(rows).items():
        print(f"{region}: {total:.2f}")
    print(f"total: {grand_total(rows):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
