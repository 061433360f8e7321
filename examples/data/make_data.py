"""Writes the small data sets of the learning and fitting examples (fixed seeds, standard library only).

    python3 examples/data/make_data.py

damped_obs.csv needs the lagc binary (LAGC, default `lagc` on the PATH): it is the run of
examples/fit_damped_oscillator.lag at c = 0.15, k = 2, every 250 steps, with Gaussian noise of
standard deviation 0.01 added to q and q', and every 7th q' left empty (missing).
"""
import math
import os
import random
import subprocess

HERE = os.path.dirname(os.path.abspath(__file__))


def write(name, header, rows):
    with open(os.path.join(HERE, name), "w") as f:
        f.write(",".join(header) + "\n")
        for r in rows:
            f.write(",".join(repr(round(v, 6)) if isinstance(v, float) else str(v) for v in r) + "\n")


def least_squares():
    rng = random.Random(1)
    rows = []
    for _ in range(200):
        x = rng.uniform(-2.0, 2.0)
        rows.append((x, 1.5 - 0.7 * x + 0.3 * rng.gauss(0.0, 1.0)))
    write("line.csv", ["x", "y"], rows)


def logistic():
    rng = random.Random(2)
    w, b = (2.0, -1.0, 0.5, 0.0), -0.25
    rows = []
    for _ in range(500):
        x = [rng.gauss(0.0, 1.0) for _ in w]
        z = b + sum(wi * xi for wi, xi in zip(w, x))
        y = 1 if rng.random() < 1.0 / (1.0 + math.exp(-z)) else 0
        rows.append(tuple(x) + (y,))
    write("classes.csv", [f"X[{j}]" for j in range(len(w))] + ["y"], rows)


def two_layer():
    rng = random.Random(3)
    rows = []
    for k in range(100):
        x = -3.0 + 6.0 * k / 99
        rows.append((x, math.sin(x) + 0.05 * rng.gauss(0.0, 1.0)))
    write("wave.csv", ["x", "y"], rows)


def damped_obs():
    lagc = os.environ.get("LAGC", "lagc")
    example = os.path.join(HERE, "..", "fit_damped_oscillator.lag")
    csv = subprocess.run(
        [lagc, "run", example, "--set", "c=0.15", "--set", "k=2", "--every", "250", "--quiet"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.splitlines()
    header = csv[0].split(",")
    t, q, v = header.index("t"), header.index("q"), header.index("q'")
    rng = random.Random(4)
    with open(os.path.join(HERE, "damped_obs.csv"), "w") as f:
        f.write("t,q,q'\n")
        for k, line in enumerate(csv[1:]):
            x = [float(c) for c in line.split(",")]
            qn = repr(round(x[q] + 0.01 * rng.gauss(0.0, 1.0), 6))
            vn = "" if k % 7 == 3 else repr(round(x[v] + 0.01 * rng.gauss(0.0, 1.0), 6))
            f.write(f"{x[t]!r},{qn},{vn}\n")


least_squares()
logistic()
two_layer()
damped_obs()
