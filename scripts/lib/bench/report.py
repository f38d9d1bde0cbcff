"""The table and the plot of `scripts/bench all`.

    report.py table <dir>   prints the Markdown table of <dir>/figures.tsv
    report.py plot <dir>    writes <dir>/ratios.png (needs matplotlib)
    report.py codec         reads criterion's output on stdin, prints "name<TAB>µs" lines

figures.tsv: path, ours, unit, reference, reference's figure, ratio or "", target, met.
"""
import csv
import re
import sys
from pathlib import Path

UNITS = {"ns": 1e-3, "µs": 1.0, "us": 1.0, "ms": 1e3, "s": 1e6}


def rows(d):
    with open(Path(d) / "figures.tsv", newline="") as f:
        return list(csv.reader(f, delimiter="\t"))


def table(d):
    machine = (Path(d) / "machine.txt").read_text().strip()
    print(f"Machine: {machine}\n")
    print("| path | ours | reference in the same run | ratio | target | met |")
    print("|---|---|---|---|---|---|")
    for path, ours, unit, ref_name, ref, ratio, target, met in rows(d):
        ours_s = f"{float(ours):,.2f} {unit}" if unit == "µs" else (f"{float(ours):,.0f} {unit}" if ours else "not measured")
        ref_s = f"{ref_name} {float(ref):,.0f}" if ref else ref_name
        print(f"| {path} | {ours_s} | {ref_s} | {ratio or '–'} | {target} | {met} |")


def bars(ax, points, color, label, ylabel, title):
    """(name, value, target) as bars with the targets marked."""
    names = [n for n, _, _ in points]
    ax.bar(names, [v for _, v, _ in points], color=color, label=label)
    ax.scatter(names, [t for _, _, t in points], color="#c44e52", marker="_", s=900, linewidths=3, label="target", zorder=3)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(loc="upper right", fontsize=8)
    ax.tick_params(axis="x", labelsize=8, rotation=10)


def plot(d):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = rows(d)
    ratios = [(r[0], float(r[5]), float(r[6].lstrip("≥ ").rstrip("×"))) for r in data if r[5]]
    micros = [(r[0], float(r[1]), float(r[6].lstrip("≤ ").split()[0])) for r in data if r[2] == "µs" and r[1] and r[6].startswith("≤")]
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4), gridspec_kw={"width_ratios": [len(ratios) or 1, len(micros) or 1]})
    bars(a, ratios, "#4c72b0", "ours / Kafka's tool", "throughput ratio (same run)", "Kafka path against Kafka's own tools")
    bars(b, micros, "#55a868", "ours", "µs per event (criterion, one core)", "Codec")
    machine = (Path(d) / "machine.txt").read_text().strip()
    fig.suptitle(machine, fontsize=8)
    fig.tight_layout()
    fig.savefig(Path(d) / "ratios.png", dpi=110)


def codec():
    text = sys.stdin.read()
    pat = re.compile(r"^(\S[^\n]*?)\s*(?:\n\s*)?time:\s+\[\S+ \S+ (\S+) (\S+) \S+ \S+\]", re.M)
    for name, mid, unit in pat.findall(text):
        print(f"{name.strip()}\t{float(mid) * UNITS[unit]:.3f}")


if __name__ == "__main__":
    {"table": lambda: table(sys.argv[2]), "plot": lambda: plot(sys.argv[2]), "codec": codec}[sys.argv[1]]()
