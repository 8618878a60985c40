"""Write the .npz files that tests/test_npz.c reads, using NumPy itself.

Run from the repository root with Debian's Python and NumPy (1.24 was used):
    /usr/bin/python3 tests/gen_npz_fixtures.py
NumPy 1.24 dates every member 1980-01-01, so rerunning the script reproduces the files byte for
byte.

The statistics use D = 6 and values that the C test recomputes exactly:
    mu[i] = 0.25 * i - 1
    sigma[i, j] = 1 / (1 + i + j)      (float64 division, so the C double result is identical)

tests/data/npz/
  stats_stored.npz      np.savez(mu=..., sigma=...): stored members with ZIP64 extra fields
  stats_deflate.npz     np.savez_compressed(mu=..., sigma=...)
  stats_float32.npz     the same arrays as float32 ('<f4')
  stats_mean_cov.npz    keys mean and cov instead of mu and sigma
  stats_other_keys.npz  keys features and labels only
  stats_no_sigma.npz    mu only
  stats_bad_shapes.npz  mu (6,) with sigma (5, 5)
  stats_sigma_vector.npz  mu (6,) with sigma flattened to (36,)
  stats_nan.npz         sigma[2, 3] = NaN
  stats_int.npz         mu and sigma as int64
  arrays.npz            layouts: a Fortran-order (3, 4) matrix, a big-endian vector, a float64
                        scalar, a (2, 3, 4) float32 array and an empty (0, 3) array
"""
import os

import numpy as np

OUT = os.path.join("tests", "data", "npz")
D = 6


def stats():
    mu = 0.25 * np.arange(D) - 1.0
    i, j = np.meshgrid(np.arange(D), np.arange(D), indexing="ij")
    sigma = 1.0 / (1.0 + i + j)
    return mu, sigma


def path(name):
    return os.path.join(OUT, name)


def main():
    os.makedirs(OUT, exist_ok=True)
    mu, sigma = stats()
    np.savez(path("stats_stored.npz"), mu=mu, sigma=sigma)
    np.savez_compressed(path("stats_deflate.npz"), mu=mu, sigma=sigma)
    np.savez_compressed(path("stats_float32.npz"), mu=mu.astype("<f4"), sigma=sigma.astype("<f4"))
    np.savez_compressed(path("stats_mean_cov.npz"), mean=mu, cov=sigma)
    np.savez_compressed(path("stats_other_keys.npz"), features=sigma, labels=mu)
    np.savez_compressed(path("stats_no_sigma.npz"), mu=mu)
    np.savez_compressed(path("stats_bad_shapes.npz"), mu=mu, sigma=sigma[:5, :5])
    np.savez_compressed(path("stats_sigma_vector.npz"), mu=mu, sigma=sigma.reshape(-1))
    bad = sigma.copy()
    bad[2, 3] = np.nan
    np.savez_compressed(path("stats_nan.npz"), mu=mu, sigma=bad)
    np.savez_compressed(path("stats_int.npz"), mu=np.arange(D, dtype="<i8"), sigma=np.eye(D, dtype="<i8"))

    fortran = np.asfortranarray(np.arange(12, dtype="<f8").reshape(3, 4))
    big_endian = (np.arange(5) * 1.5).astype(">f8")
    scalar = np.float64(2.5)
    three_d = np.arange(24, dtype="<f4").reshape(2, 3, 4) - 0.5
    empty = np.zeros((0, 3))
    np.savez(path("arrays.npz"), fortran=fortran, big_endian=big_endian, scalar=scalar, three_d=three_d,
             empty=empty)

    # Check each file's contents as numpy sees them, which is what the C test expects.
    with np.load(path("arrays.npz")) as f:
        assert f["fortran"].flags.f_contiguous and not f["fortran"].flags.c_contiguous
        assert f["big_endian"].dtype.str == ">f8"
        assert f["scalar"].shape == ()
    for name in ("stats_stored.npz", "stats_deflate.npz"):
        with np.load(path(name)) as f:
            assert np.array_equal(f["mu"], mu), name
            assert np.array_equal(f["sigma"], sigma), name
    print("wrote", OUT)


if __name__ == "__main__":
    main()
