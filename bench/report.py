"""bench/RESULTS.md: one section per benchmark run, appended, so the history stays."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

RESULTS_MD = Path(__file__).resolve().parent / "RESULTS.md"

PREAMBLE = (
    "# Benchmark results\n\nNewest last. Each section is one run of the command shown; "
    "see each script's docstring for what it measures.\n"
)


def append_section(
    title: str, command: str, columns: Sequence[str], rows: Sequence[Sequence[object]], footer: str = ""
) -> None:
    """A `### title` section: the command, a table of rows under columns, and a footer line."""
    lines = [
        f"\n### {title}\n",
        f"{command}\n",
        "| " + " | ".join(columns) + " |",
        "|" + "---|" * len(columns),
        *("| " + " | ".join(str(cell) for cell in row) + " |" for row in rows),
    ]
    if footer:
        lines.append(f"\n{footer}\n")
    if not RESULTS_MD.exists():
        RESULTS_MD.write_text(PREAMBLE)
    with RESULTS_MD.open("a") as fh:
        fh.write("\n".join(lines) + "\n")
