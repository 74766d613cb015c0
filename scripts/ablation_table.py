"""Held-out metrics of several training runs side by side, as a Markdown table."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(out: Path, names: list[str]) -> None:
    rows, sources = [], ["dfdc", "yonsei", "ffhq_sg2"]
    header = "| recipe | " + " | ".join(f"{s} AUC" for s in sources) + " | mean |"
    rows += [header, "|---" * (len(sources) + 2) + "|"]
    for name in names:
        path = out / name / "metrics.json"
        if not path.exists():
            rows.append(f"| {name} | " + " | ".join("–" for _ in sources) + " | – |")
            continue
        report = json.loads(path.read_text())
        val = report["validation"]
        aucs = [val.get(s, {}).get("auc") for s in sources]
        mean = sum(a for a in aucs if a is not None) / max(1, sum(a is not None for a in aucs))
        cells = [f"{a:.3f}" if a is not None else "–" for a in aucs]
        rows.append(f"| {name} | " + " | ".join(cells) + f" | {mean:.3f} |")
    print("\n".join(rows))


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2:])
