"""Latency against offered load, from the sweep of a bench run.

    .venv/bin/python bench/plot.py <sweep.json> <out.png>

sweep.json: {"title": str, "series": [{"label": str, "points": [{"rate", "p50", "p99", "behind"}]}]}
One colour per system; solid = p50, dashed = p99; a hollow marker = the system fell behind the
offered rate there (its queue grows). Log-log axes.
"""
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main() -> None:
    src, out = sys.argv[1], sys.argv[2]
    with open(src, encoding="utf-8") as f:
        data = json.load(f)
    fig, ax = plt.subplots(figsize=(10, 6), dpi=120)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, series in enumerate(data["series"]):
        color = colors[i % len(colors)]
        pts = series["points"]
        rates = [p["rate"] for p in pts]
        ax.plot(rates, [p["p50"] for p in pts], "-", color=color, label=f'{series["label"]} p50')
        ax.plot(rates, [p["p99"] for p in pts], "--", color=color, alpha=0.7, label=f'{series["label"]} p99')
        for p in pts:
            face = "none" if p["behind"] else color
            ax.plot([p["rate"]], [p["p50"]], "o", color=color, markerfacecolor=face, markersize=6)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("offered load (sagas/s, open loop)")
    ax.set_ylabel("latency (ms)")
    ax.set_title(data["title"], fontsize=11)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, ncol=2, loc="upper left")
    fig.tight_layout()
    fig.savefig(out)


if __name__ == "__main__":
    main()
