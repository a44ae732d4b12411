"""Plot proxyd's ratio to the relay per scenario over the saved runs: `python -m bench.plot [OUT.png]`.

Needs matplotlib (not a dependency); without it the script says so and exits 0.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def series() -> tuple[list[str], dict[str, list[float | None]]]:
    runs = sorted(RESULTS.glob("*.json"))
    labels: list[str] = []
    lines: dict[str, list[float | None]] = {}
    for i, path in enumerate(runs):
        data = json.loads(path.read_text())
        labels.append(data["machine"]["commit"])
        for name, entry in data.get("scenarios", {}).items():
            figures = entry["figures"]
            ratio = None
            if entry["kind"] == "load" and "relay" in figures and "proxyd" in figures:
                ratio = figures["proxyd"]["rps"] / figures["relay"]["rps"]
            lines.setdefault(name, [None] * i).append(ratio)
        for values in lines.values():
            values.extend([None] * (i + 1 - len(values)))
    return labels, {k: v for k, v in lines.items() if any(x is not None for x in v)}


def main() -> int:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else RESULTS / "ratios.png"
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        sys.stderr.write("matplotlib is not installed: no plot (pip install matplotlib)\n")
        return 0
    labels, lines = series()
    fig, ax = plt.subplots(figsize=(10, 5))
    for name, values in lines.items():
        ax.plot(range(len(labels)), [v if v is not None else float("nan") for v in values], marker="o", label=name)
    ax.axhline(0.75, linestyle="--", color="grey", linewidth=0.8)
    ax.axhline(0.5, linestyle=":", color="grey", linewidth=0.8)
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_ylabel("proxyd req/s ÷ bare relay req/s")
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(out)
    sys.stderr.write(f"wrote {out}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
