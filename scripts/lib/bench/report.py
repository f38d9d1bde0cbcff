"""The table and the plot of `scripts/bench all`.

    report.py table <dir>   prints the Markdown table of <dir>/figures.tsv
    report.py plot <dir>    writes <dir>/ratios.png (needs matplotlib)
    report.py latency <dir> writes <dir>/latency.png from <dir>/latency-<pct>.tsv, the CDF of
                            each step of `ltf bench latency`, and <dir>/timeline.png from
                            <dir>/timeline-50.tsv, the 50 % step's slow events over time
                            (needs matplotlib)
    report.py codec         reads criterion's output on stdin, prints "name<TAB>µs" lines

figures.tsv: path, ours, unit, reference, reference's figure, ratio or "", target, met.
"""
import csv
import re
import sys
from pathlib import Path

UNITS = {"ns": 1e-3, "µs": 1.0, "us": 1.0, "ms": 1e3, "s": 1e6}

# Decimals shown per unit of figures.tsv (others: none).
DECIMALS = {"µs": 2, "ms": 2, "MiB": 1}


def shown(value, unit):
    """A figure with its unit, e.g. "12.34 ms" or "81,234 events/s"."""
    return f"{float(value):,.{DECIMALS.get(unit, 0)}f} {unit}"


def rows(d):
    with open(Path(d) / "figures.tsv", newline="") as f:
        return list(csv.reader(f, delimiter="\t"))


def table(d):
    machine = (Path(d) / "machine.txt").read_text().strip()
    print(f"Machine: {machine}\n")
    print("| path | ours | reference in the same run | ratio | target | met |")
    print("|---|---|---|---|---|---|")
    for path, ours, unit, ref_name, ref, ratio, target, met in rows(d):
        ours_s = shown(ours, unit) if ours else "not measured"
        # Throughput references keep the tools' own unit (records/s) unsaid.
        ref_s = (f"{ref_name} {float(ref):,.0f}" if unit == "events/s" else f"{ref_name} {shown(ref, unit)}") if ref else ref_name
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


def latency(d):
    """The CDF of every latency step (latency-<pct>.tsv) on one plot: the 10 ms target, and
    Kafka's EndToEndLatency p99 when figures.tsv has it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files = sorted(Path(d).glob("latency-*.tsv"), key=lambda f: int(f.stem.split("-")[1]))
    if not files:
        sys.exit(f"no latency-<pct>.tsv in {d}: run ltf bench latency --out {d} first")
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for f in files:
        lines = f.read_text().splitlines()
        label = lines[0].lstrip("# ") if lines and lines[0].startswith("#") else f.stem
        points = [tuple(map(float, l.split("\t"))) for l in lines if l and l[0].isdigit()]
        if points:
            ax.plot([ms for ms, _ in points], [q for _, q in points], label=label)
    ax.axvline(10, color="#c44e52", linestyle="--", label="target: p99 ≤ 10 ms at 50 %")
    ax.axhline(0.99, color="#999999", linewidth=0.8)
    floor = Path(d) / "figures.tsv"
    for r in rows(d) if floor.exists() else []:
        if r[2] == "ms" and r[4]:
            ax.axvline(float(r[4]), color="#555555", linestyle=":", label=f"{r[3]}: {float(r[4]):g} ms")
    ax.set_xscale("log")
    ax.set_xlabel("produced event → no-op worker handler, ms (log scale)")
    ax.set_ylabel("fraction of events")
    ax.set_title("Latency CDF per rate step (percent of the maximum sustained rate)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    machine = Path(d) / "machine.txt"
    if machine.exists():
        fig.suptitle(machine.read_text().strip(), fontsize=8)
    fig.tight_layout()
    fig.savefig(Path(d) / "latency.png", dpi=110)
    timeline(d, plt)


def timeline(d, plt):
    """The 50 % step over time (timeline-50.tsv, per 100 ms of handling time): the share of
    events over 10 ms and the slowest event of each window."""
    f = Path(d) / "timeline-50.tsv"
    if not f.exists():
        return
    rows_ = [l.split("\t") for l in f.read_text().splitlines()[1:] if l]
    if not rows_:
        return
    t0 = int(rows_[0][0])
    secs = [(int(r[0]) - t0) / 1000 for r in rows_]
    fig, (share, worst) = plt.subplots(2, 1, figsize=(8, 5), sharex=True)
    share.bar(secs, [100 * int(r[2]) / int(r[1]) for r in rows_], width=0.1, align="edge", color="#4c72b0")
    share.set_ylabel("% of events > 10 ms")
    share.set_title("The 50 % step over time, per 100 ms of handling time")
    worst.plot(secs, [float(r[3]) for r in rows_], color="#c44e52", linewidth=0.8)
    worst.axhline(10, color="#999999", linestyle="--", linewidth=0.8)
    worst.set_ylabel("slowest event, ms")
    worst.set_xlabel("seconds into the step")
    for ax in (share, worst):
        ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(Path(d) / "timeline.png", dpi=110)


def codec():
    text = sys.stdin.read()
    pat = re.compile(r"^(\S[^\n]*?)\s*(?:\n\s*)?time:\s+\[\S+ \S+ (\S+) (\S+) \S+ \S+\]", re.M)
    for name, mid, unit in pat.findall(text):
        print(f"{name.strip()}\t{float(mid) * UNITS[unit]:.3f}")


if __name__ == "__main__":
    {"table": lambda: table(sys.argv[2]), "plot": lambda: plot(sys.argv[2]), "latency": lambda: latency(sys.argv[2]), "codec": codec}[
        sys.argv[1]
    ]()
