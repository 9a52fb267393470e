"""bench/plot.png from the figures the benches saved in bench/data/ (see `make bench`):
latency distributions per method (sqs_path.py), jobs/s against job slots
(throughput.py --sweep) and, when there, the daemon's RSS against jobs (rss.py).

    python bench/plot.py [--data bench/data] [--out bench/plot.png]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt

HERE = Path(__file__).resolve().parent
COLOURS = {
    "bare host": "#888888",
    "in-process": "#1f77b4",
    "through SQS": "#d62728",
    "sqs only": "#2ca02c",
}


def load(path: Path) -> dict[str, Any] | None:
    try:
        doc: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return doc


def latency_panel(ax: Any, doc: dict[str, Any]) -> None:
    for name, samples in doc["samples_s"].items():
        ms = sorted(s * 1000 for s in samples)
        if not ms:
            continue
        frac = [0.0] + [(k + 1) / len(ms) for k in range(len(ms))]
        ax.step([ms[0], *ms], frac, where="post", label=name, color=COLOURS.get(name))
    ax.set_xscale("log")
    ticks = [10, 20, 50, 100, 200, 500, 1000, 2000]
    ax.set_xticks(ticks, [str(t) for t in ticks])
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("ms per job: send -> result; bare host: the pytest run (log scale)")
    ax.set_ylabel("fraction of jobs")
    ax.set_title(f"warm 1-test job: latency CDF ({doc['rounds']} interleaved rounds)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right")


def throughput_panel(ax: Any, doc: dict[str, Any]) -> None:
    rows = doc["sweep"]
    slots = [r["slots"] for r in rows]
    for name in ("bare host", "in-process", "through SQS"):
        label = name + (" (K pytest runs at once)" if name == "bare host" else "")
        ax.plot(slots, [r[name] for r in rows], marker="o", label=label, color=COLOURS[name])
    ax.set_xticks(slots)
    ax.set_xlabel("job slots K (SANDBOXD_POOL_SIZES=python=K)")
    ax.set_ylabel("jobs/s")
    ax.set_ylim(bottom=0)
    ax.set_title(f"burst of {doc['sweep_n']} 1-test jobs, {doc['cpus']} CPUs")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best")


def rss_panel(ax: Any, doc: dict[str, Any]) -> None:
    runs = [("this checkout", doc, "#9467bd")]
    if doc.get("baseline"):
        runs.insert(0, (f"before ({doc['baseline']['rev']})", doc["baseline"], "#bbbbbb"))
    for label, run, colour in runs:
        curve = run["curve"]
        xs, ys = [c[0] for c in curve], [c[1] / 1024 for c in curve]
        ax.plot(xs, ys, marker=".", color=colour, label=label)
    ax.set_xlabel("jobs through the daemon")
    ax.set_ylabel("daemon VmRSS, MiB")
    ax.set_ylim(bottom=0)
    ax.set_title(f"daemon RSS ({doc['job']} jobs, streamed through SQS)")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right")


def languages_panel(ax: Any, doc: dict[str, Any]) -> None:
    rows = doc["languages"]
    names = [r["language"] for r in rows]
    xs = range(len(rows))
    width = 0.38
    ax.bar([x - width / 2 for x in xs], [r["bare_ms"] for r in rows], width,
           label="bare host, same test command", color="#bbbbbb")  # fmt: skip
    ax.bar([x + width / 2 for x in xs], [r["sandboxed_ms"] for r in rows], width,
           label="warm sandboxed job", color="#2ca02c")  # fmt: skip
    for x, r in zip(xs, rows, strict=True):
        ax.annotate(f"{r['ratio']:.2f}x", (x + width / 2, r["sandboxed_ms"]),
                    ha="center", va="bottom", fontsize=9)  # fmt: skip
    ax.set_xticks(list(xs), names, rotation=20, ha="right")
    ax.set_yscale("log")  # 20 ms (PHP) to seconds (Jest, tsc) in one panel
    ax.set_ylabel("ms to a verdict (median, log scale)")
    ax.set_title(f"per language: the canary fixture ({doc['rounds']} rounds)")
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(loc="upper right")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=HERE / "data")
    parser.add_argument("--out", type=Path, default=HERE / "plot.png")
    args = parser.parse_args()
    panels = [
        (latency_panel, load(args.data / "latency.json")),
        (throughput_panel, load(args.data / "throughput.json")),
        (rss_panel, load(args.data / "rss.json")),
        (languages_panel, load(args.data / "languages.json")),
    ]
    panels = [(draw, doc) for draw, doc in panels if doc is not None]
    panels = [(d, doc) for d, doc in panels if d is not throughput_panel or doc.get("sweep")]
    if not panels:
        raise SystemExit(f"nothing to plot in {args.data}: run the benches with --json first")
    fig, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 4.8), squeeze=False)
    for ax, (draw, doc) in zip(axes[0], panels, strict=True):
        draw(ax, doc)
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
