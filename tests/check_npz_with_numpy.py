"""Check that NumPy and Python's zipfile read the .npz files that mixgan writes.

Run from the repository root with Debian's Python and NumPy (not part of `make test`, because
CI has no NumPy):
    /usr/bin/python3 tests/check_npz_with_numpy.py
It builds the test runner, runs the npz_write_round_trip test with MIXGAN_NPZ_EXPORT_DIR set so
that the test keeps its output files, and loads them the way pytorch-fid loads statistics.
"""
import os
import subprocess
import tempfile
import zipfile

import numpy as np

DIM = 300


def main():
    subprocess.run(["make", "-s", "build/release/run-tests"], check=True)
    with tempfile.TemporaryDirectory() as out_dir:
        env = dict(os.environ, MIXGAN_NPZ_EXPORT_DIR=out_dir)
        subprocess.run(["build/release/run-tests", "npz_write_round_trip"], check=True, env=env)

        i = np.arange(DIM, dtype=np.float64)
        mu = i / 7.0
        sigma = (i[:, None] + 1) / (i[None, :] + 3.0)
        for name, members in (("stats_compressed.npz", {"mu.npy", "sigma.npy"}),
                              ("stats_stored.npz", {"mu.npy", "sigma.npy", "scalar.npy"})):
            path = os.path.join(out_dir, name)
            with zipfile.ZipFile(path) as z:
                assert z.testzip() is None, name
                assert set(z.namelist()) == members, z.namelist()
            with np.load(path) as f:
                assert f["mu"].dtype == np.float64, f["mu"].dtype
                assert f["mu"].shape == (DIM,), f["mu"].shape
                assert f["sigma"].dtype == np.float64, f["sigma"].dtype
                assert f["sigma"].shape == (DIM, DIM), f["sigma"].shape
                assert np.array_equal(f["mu"][:], mu), name
                assert np.array_equal(f["sigma"][:], sigma), name
                if "scalar.npy" in members:
                    assert f["scalar"].shape == (), f["scalar"].shape
                    assert f["scalar"] == -0.125, f["scalar"]
            print("numpy reads", name)


if __name__ == "__main__":
    main()
