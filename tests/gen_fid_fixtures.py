"""Write the feature sets and reference FID values that tests/test_fid_stats.c checks against.

Run from the repository root with Debian's NumPy and SciPy (1.24 and 1.10 were used):
    /usr/bin/python3 tests/gen_fid_fixtures.py
The random generator is seeded, so rerunning the script reproduces the files.

Each tests/data/fid/<case>.npz contains
  features_a, features_b  float32 (N, D) feature sets, rows being images
  mu_a, sigma_a, mu_b, sigma_b
                          float64 statistics as pytorch-fid computes them: np.mean(axis=0)
                          and np.cov(rowvar=False) of the features converted to float64
  fid                     pytorch-fid's calculate_frechet_distance on those statistics:
                          scipy.linalg.sqrtm of sigma_a·sigma_b, retried with 1e-6·I added to
                          both covariances when the result is not finite
  fid_offset              the same formula with the 1e-6·I offset always applied
  sqrtm_retried           1.0 when pytorch-fid's retry was taken for `fid`, else 0.0

Cases (D = feature dimension):
  well_conditioned  A: 300 images, B: 250 images, D = 64, correlated Gaussian features
  relu_features     A and B: 200 images, D = 96, rectified correlated Gaussians with a mean
                    far from zero, like Inception pool3 features
  singular          A: 40 images (fewer than D, so sigma_a has rank 39), B: 300, D = 64
  both_singular     A and B: 30 images, D = 64
  collapsed         A: 300 images, B: 50 identical images (sigma_b = 0), D = 32
  offset_mean       A and B: 300 images, D = 16, mean 1000 and standard deviation 0.01,
                    which makes a naive sum-of-squares covariance cancel
"""
import os

import numpy as np
from scipy import linalg

OUT = os.path.join("tests", "data", "fid")
EPS = 1e-6


def frechet_distance(mu1, sigma1, mu2, sigma2, always_offset=False):
    """The formula of pytorch-fid's calculate_frechet_distance, with its eps retry made optional."""
    diff = mu1 - mu2
    retried = False
    if always_offset:
        covmean = None
    else:
        covmean, _ = linalg.sqrtm(sigma1.dot(sigma2), disp=False)
    if always_offset or not np.isfinite(covmean).all():
        retried = not always_offset
        offset = np.eye(sigma1.shape[0]) * EPS
        covmean = linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError("Imaginary component {}".format(np.max(np.abs(covmean.imag))))
        covmean = covmean.real
    value = diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean)
    return float(value), retried


def statistics(features):
    x = features.astype(np.float64)
    return np.mean(x, axis=0), np.cov(x, rowvar=False)


def correlated(rng, n, d, mean=0.0, scale=1.0):
    mixing = rng.standard_normal((d, d)) / np.sqrt(d)
    return (rng.standard_normal((n, d)) @ mixing * scale + mean).astype(np.float32)


def write_case(name, features_a, features_b):
    mu_a, sigma_a = statistics(features_a)
    mu_b, sigma_b = statistics(features_b)
    fid, retried = frechet_distance(mu_a, sigma_a, mu_b, sigma_b)
    fid_offset, _ = frechet_distance(mu_a, sigma_a, mu_b, sigma_b, always_offset=True)
    np.savez_compressed(os.path.join(OUT, name + ".npz"), features_a=features_a, features_b=features_b, mu_a=mu_a,
                        sigma_a=sigma_a, mu_b=mu_b, sigma_b=sigma_b, fid=np.float64(fid),
                        fid_offset=np.float64(fid_offset), sqrtm_retried=np.float64(retried))
    print(f"{name}: fid {fid:.6f}, with offset {fid_offset:.6f}, sqrtm retried: {retried}")


def main():
    os.makedirs(OUT, exist_ok=True)
    rng = np.random.default_rng(20240601)

    write_case("well_conditioned", correlated(rng, 300, 64), correlated(rng, 250, 64, mean=0.2, scale=1.3))

    relu_a = np.maximum(correlated(rng, 200, 96, mean=0.3), 0)
    relu_b = np.maximum(correlated(rng, 200, 96, mean=0.4, scale=0.9), 0)
    write_case("relu_features", relu_a, relu_b)

    write_case("singular", correlated(rng, 40, 64), correlated(rng, 300, 64, mean=0.1))
    write_case("both_singular", correlated(rng, 30, 64), correlated(rng, 30, 64, mean=0.5))

    one_image = correlated(rng, 1, 32, mean=0.5)
    write_case("collapsed", correlated(rng, 300, 32), np.repeat(one_image, 50, axis=0))

    write_case("offset_mean", correlated(rng, 300, 16, mean=1000.0, scale=0.01),
               correlated(rng, 300, 16, mean=1000.0, scale=0.012))


if __name__ == "__main__":
    main()
