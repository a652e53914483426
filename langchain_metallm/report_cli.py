"""``metallm-report STATE_DIR [--decisions LOG.jsonl] -o report.html``: the report
(``report``) of a router save and its decision log, without loading any model."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from langchain_metallm.report import saved_report_data, summary_text, write_report


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: write the report, print the summary and where it went."""
    args = _parser().parse_args(argv)
    try:
        data = saved_report_data(args.state_dir, args.decisions)
        evaluation = None if args.evaluation is None else _rows(args.evaluation)
        path = write_report(data, args.output, evaluation=evaluation)
    except (OSError, ValueError) as error:
        raise SystemExit(f"metallm-report: {error}") from None
    if not args.quiet:
        print(summary_text(data))
        print(f"\nreport: {path}")
    return 0


def _rows(path: Path) -> list[dict[str, Any]]:
    """Evaluation rows from a JSON file: a list of rows, or ``{"rows": [...]}``."""
    loaded = json.loads(path.read_text(encoding="utf-8"))
    rows = loaded.get("rows") if isinstance(loaded, dict) else loaded
    if not isinstance(rows, list):
        raise ValueError(f"{path}: expected a JSON list of evaluation rows")
    return rows


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="metallm-report",
        description="Write one self-contained HTML report of what a saved router "
        "learned (router.save(STATE_DIR)), with its decision log "
        "(router.core.log.to_jsonl(LOG.jsonl)) if given. No prompt text is read.",
    )
    parser.add_argument("state_dir", type=Path, help="the router's save directory")
    parser.add_argument(
        "--decisions",
        type=Path,
        default=None,
        metavar="LOG.jsonl",
        help="the decision log, as DecisionLog.to_jsonl wrote it",
    )
    parser.add_argument(
        "--evaluation",
        type=Path,
        default=None,
        metavar="ROWS.json",
        help="counterfactual estimates: a JSON list of rows with cost_weight or "
        "budget, accuracy(_low/_high), cost(_low/_high) and shares",
    )
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        default=Path("report.html"),
        help="the HTML file to write (default report.html)",
    )
    parser.add_argument(
        "-q", "--quiet", action="store_true", help="print nothing on success"
    )
    return parser


if __name__ == "__main__":
    raise SystemExit(main())
