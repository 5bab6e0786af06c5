"""A flame graph (PNG) from the folded stacks bench/profile.ts writes.

    .venv/bin/python bench/flame.py <profile.folded> <out.png> [title]

Each line of the input is "frame;frame;…;leaf samples". Width = share of the busy samples, root
at the bottom; frames are coloured by where they come from (sagamesh's own code, xstate, undici,
grpc-js, node internals, …), and labelled when wide enough to read.
"""
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.patches as patches  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402

AREAS = [
    ("dist/src/", "#d62728", "sagamesh src/"),
    ("xstate", "#1f77b4", "xstate"),
    ("undici", "#2ca02c", "undici"),
    ("@grpc", "#9467bd", "grpc-js"),
    ("protobufjs", "#8c564b", "protobufjs"),
    ("pino", "#e377c2", "pino"),
    ("jsonata", "#bcbd22", "jsonata"),
    ("node_modules", "#7f7f7f", "other libraries"),
    ("node:", "#ff7f0e", "node internals"),
]


def colour(frame: str) -> str:
    for key, col, _ in AREAS:
        if key in frame:
            return col
    return "#c7c7c7"


def build(path: str) -> tuple[dict, int]:
    root: dict = {"n": 0, "c": {}}
    total = 0
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                continue
            stack, _, n = line.rpartition(" ")
            count = int(n)
            total += count
            node = root
            node["n"] += count
            for frame in stack.split(";"):
                node = node["c"].setdefault(frame, {"n": 0, "c": {}})
                node["n"] += count
    return root, total


def main() -> None:
    src, out = sys.argv[1], sys.argv[2]
    title = sys.argv[3] if len(sys.argv) > 3 else "CPU flame graph"
    root, total = build(src)
    fig, ax = plt.subplots(figsize=(16, 9), dpi=110)
    max_depth = 0

    def draw(node: dict, x: float, depth: int) -> None:
        nonlocal max_depth
        for name, child in sorted(node["c"].items(), key=lambda kv: -kv[1]["n"]):
            w = child["n"] / total
            if w < 0.0015:
                x += w
                continue
            max_depth = max(max_depth, depth)
            ax.add_patch(patches.Rectangle((x, depth), w, 0.95, facecolor=colour(name), edgecolor="white", lw=0.3))
            if w > 0.035:
                label = name.split(" ")[0] or name
                ax.text(x + 0.002, depth + 0.45, label[: int(w * 160)], fontsize=6, va="center", clip_on=True)
            draw(child, x, depth + 1)
            x += w

    draw(root, 0.0, 0)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, max_depth + 1)
    ax.set_yticks([])
    ax.set_xlabel("share of busy CPU samples")
    ax.set_title(title, fontsize=10)
    ax.legend(
        handles=[patches.Patch(color=c, label=l) for _, c, l in AREAS],
        loc="upper right",
        fontsize=7,
        ncol=3,
    )
    fig.tight_layout()
    fig.savefig(out)


if __name__ == "__main__":
    main()
