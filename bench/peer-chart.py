#!/usr/bin/python3
"""Draws the peer benchmark as one SVG: throughput and p99 per cell, connpool against the peers.

  bench/peer-chart.py OUT.svg RESULTS.txt [RESULTS.txt ...]

RESULTS are the files ../shared/peer-bench's run-all.sh writes (results/<stamp>.txt). Each
cell is the median over the files, as `tools/summarize.py --median` computes it, so the chart
and the README table come from the same runs. Needs Debian's python3 and gnuplot (gnuplot-nox).
Top row: operations per second; bottom row: p99 of the whole operation (checkout to checkin
returned); one column per workload; both axes logarithmic, since the peers span four decades.
"""
import os
import statistics
import subprocess
import sys
import tempfile

WORKLOADS = ("acquire", "select1", "txn")
CELLS = ("1", "4", "32", "300", "seed")
# The peers a reader compares against; the rest of the matrix is in the table.
DRIVERS = ("connpool", "soci", "hikaricp", "libzdb", "pgbouncer", "libpq-thread")


def parse(path):
    for line in open(path):
        if line.startswith("name="):
            yield dict(tok.split("=", 1) for tok in line.split() if "=" in tok)


def medians(paths):
    runs = {}
    for path in paths:
        for r in parse(path):
            if r.get("rc") != "0" or float(r.get("ops_per_s", 0)) <= 0:
                continue
            cell = "seed" if r.get("scenario") == "seed" else r["threads"]
            key = (r["workload"], r["name"], cell)
            runs.setdefault(key, []).append((float(r["ops_per_s"]), float(r["op_p99_us"])))
    return {k: (statistics.median(v[0] for v in vs), statistics.median(v[1] for v in vs))
            for k, vs in runs.items()}


def drivers_of(table, workload):
    """The drivers that ran the workload (libpq-thread and pgbouncer have no acquire)."""
    return [d for d in DRIVERS if any((workload, d, c) in table for c in CELLS)]


def data_block(table, workload, column):
    """One gnuplot data block: a row per cell, a column per driver ('-' where it did not run)."""
    drivers = drivers_of(table, workload)
    lines = ["cell " + " ".join(drivers)]
    for cell in CELLS:
        values = []
        for d in drivers:
            v = table.get((workload, d, cell))
            values.append("-" if v is None else "%g" % (v[column] if column == 0 else v[column] / 1000.0))
        lines.append(("seed" if cell == "seed" else cell + "thr") + " " + " ".join(values))
    return "\n".join(lines) + "\n"


def main(argv):
    if len(argv) < 3:
        sys.exit(__doc__)
    out, paths = argv[1], argv[2:]
    table = medians(paths)
    if not table:
        sys.exit("peer-chart: no results in " + " ".join(paths))
    script = ['set terminal svg size 1500,800 dynamic font "sans,11"',
              'set output "%s"' % out,
              'set datafile missing "-"',
              'set style data histograms', 'set style histogram clustered gap 1',
              'set style fill solid 0.85 border -1', 'set boxwidth 0.9',
              'set logscale y', 'set grid ytics', 'set key outside top center horizontal font ",9"',
              'set multiplot layout 2,3 title "peer benchmark, median of %d runs '
              '(pool 10 + 0; seed = 300 threads on 5 + 10, cold)"' % len(paths)]
    blocks = []
    for row, (column, label) in enumerate(((0, "operations/s"), (1, "p99 of an operation, ms"))):
        for workload in WORKLOADS:
            name = "$%s%d" % (workload, row)
            blocks.append("%s << EOD\n%sEOD" % (name, data_block(table, workload, column)))
            script.append('set title "%s: %s"' % (workload, label))
            # Bars start at the axis: keep the smallest one visible above it.
            low = min(v[column] / (1 if column == 0 else 1000.0)
                      for k, v in table.items() if k[0] == workload and k[1] in DRIVERS)
            script.append("set yrange [%g:*]" % (low / 3))
            plots = ['%s using %d:xtic(1) title columnheader(%d)%s' %
                     (name, i + 2, i + 2, ' lc rgb "#d62728"' if d == "connpool" else "")
                     for i, d in enumerate(drivers_of(table, workload))]
            script.append("plot " + ", ".join(plots))
    script.append("unset multiplot")
    with tempfile.NamedTemporaryFile("w", suffix=".gp", delete=False) as f:
        f.write("\n".join(blocks) + "\n" + "\n".join(script) + "\n")
        gp = f.name
    try:
        subprocess.run(["gnuplot", gp], check=True)
    finally:
        os.unlink(gp)


if __name__ == "__main__":
    main(sys.argv)
