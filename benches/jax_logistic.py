"""The full gradient of logistic regression with JAX, on the CSV file that
`cargo bench --bench data` wrote (LAGC_BENCH_DATA_CSV): `jax.jit(jax.grad(loss))`
in float64 on the CPU, at the same parameters as the Rust benchmark, checked
against NumPy's closed form of the same gradient. Run by benches/jax_logistic.sh.
"""

import statistics
import sys
import time

import jax

jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

LAMBDA = 1e-3


def main(path):
    table = np.genfromtxt(path, delimiter=",", skip_header=1)
    x, y = table[:, :-1], table[:, -1]
    rows, features = x.shape
    theta = np.array([0.1 * ((i % 7) - 3.0) for i in range(features + 1)])

    def loss(p, x, y):
        w, b = p[:-1], p[-1]
        z = b + x @ w
        return jnp.mean(jnp.logaddexp(0.0, z) - y * z) + LAMBDA / 2 * jnp.sum(w * w)

    grad = jax.jit(jax.grad(loss))
    xj, yj, pj = jnp.asarray(x), jnp.asarray(y), jnp.asarray(theta)
    start = time.perf_counter()
    g = np.asarray(grad(pj, xj, yj).block_until_ready())
    first = time.perf_counter() - start

    # The same gradient in closed form: X'(s - y)/M + lambda w, and mean(s - y) for b.
    z = theta[-1] + x @ theta[:-1]
    s = 1 / (1 + np.exp(-z)) - y
    closed = np.append(x.T @ s / rows + LAMBDA * theta[:-1], s.mean())
    err = np.max(np.abs(g - closed))
    assert err < 1e-12, f"JAX and the closed form disagree by {err}"

    reps = 50
    runs = []
    for _ in range(9):
        start = time.perf_counter()
        for _ in range(reps):
            grad(pj, xj, yj).block_until_ready()
        runs.append((time.perf_counter() - start) / reps)
    t = statistics.median(runs)
    print(f"jax {jax.__version__}, jit(grad(loss)), float64, CPU: {rows} rows x {features} features")
    print(f"| jax.jit(jax.grad(loss)) | {t * 1e6:.1f} µs | {t * 1e9 / rows:.2f} ns | (median of 9 x {reps}) |")
    print(f"first call (trace and compile): {first * 1e3:.0f} ms; gradient agrees with the closed form to {err:.1e}")


if __name__ == "__main__":
    main(sys.argv[1])
