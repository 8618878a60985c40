#!/usr/bin/python3
"""Time pytorch-fid's two costly parts: the InceptionV3 forward and the Fréchet distance.

usage: bench/torch_fid.py [--batch 50] [--batches N] [--warmup W] [--threads T]
                          [--frechet-runs R] [--part {inception,frechet,both}]

This is the PyTorch side of `make bench` for FID. pytorch-fid is not packaged in Debian,
so the script rebuilds what pytorch-fid runs (src/pytorch_fid/inception.py and
fid_score.py in mseitzer/pytorch-fid) from torchvision's Inception3 and SciPy:

- inception: the FID variant of InceptionV3 up to the 2048-d pool3 features, in eval mode
  under no_grad. It is torchvision's Inception3 with 1008 classes, where the pool branches
  of Mixed_5b-5d, 6b-6e and 7b average with count_include_pad=False and the pool branch of
  Mixed_7c is a max pool. Each timed batch starts from 32x32 uint8 pictures. It includes
  the conversion to [0, 1], the bilinear resize to 299x299 (align_corners=False), the
  scaling to [-1, 1] and the copy of the features into a float64 array, as in pytorch-fid.
  Weights are random (He normal) because the speed does not depend on their values, and
  pytorch-fid's weight file is not packaged. He normal keeps activations at a normal
  scale, so no denormal numbers slow the arithmetic down.
- frechet: pytorch-fid's calculate_frechet_distance on 2048-d statistics, meaning
  scipy.linalg.sqrtm of sigma1 @ sigma2 and the traces. The statistics come from 2,100
  random non-negative feature vectors per set, so both covariances are positive definite.

It needs Debian's python3-torch, python3-torchvision and python3-scipy, hence
/usr/bin/python3. Like torch_gan.py, it re-executes itself with the thread settings (and,
with TORCH_KEEP_FREED_MEMORY=1, the malloc settings) of torch_common.py when the caller has
not set them.
"""
import argparse
import sys
import time

import torch_common

FEATURE_DIMS = 2048
# Tensors and elements in the state dict of pytorch-fid's network, including the unused fc
# layer and the num_batches_tracked counter of each of the 94 batch norms.
INCEPTION_TENSORS = 566
INCEPTION_ELEMENTS = 23_885_486
FRECHET_SAMPLES = 2100


def parse_arguments():
    parser = argparse.ArgumentParser(description="Time pytorch-fid's InceptionV3 forward and Fréchet distance.")
    parser.add_argument("--batch", type=int, default=50, help="images per Inception batch (default 50, as pytorch-fid)")
    parser.add_argument("--batches", type=int, default=10, help="timed Inception batches (default 10)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed Inception batches before them (default 1)")
    parser.add_argument("--threads", type=int, default=2, help="PyTorch and OpenBLAS threads (default 2)")
    parser.add_argument("--frechet-runs", type=int, default=3, help="timed Fréchet distance computations (default 3)")
    parser.add_argument("--part", choices=("inception", "frechet", "both"), default="both",
                        help="which part to time (default both)")
    arguments = parser.parse_args()
    for name in ("batch", "batches", "threads", "frechet_runs"):
        if getattr(arguments, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1, got {getattr(arguments, name)}")
    if arguments.warmup < 0:
        parser.error(f"--warmup must not be negative, got {arguments.warmup}")
    return arguments


ARGUMENTS = parse_arguments()
torch_common.ensure_benchmark_environment(ARGUMENTS.threads)

import numpy as np  # noqa: E402  (imported after the environment is set)
import scipy.linalg  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

try:
    from torchvision.models.inception import Inception3, InceptionA, InceptionC, InceptionE  # noqa: E402
except ImportError:
    sys.exit("torch_fid.py: torchvision is missing; install it with: apt-get install python3-torchvision")


# ---- the FID variant of InceptionV3 ---------------------------------------------------

def average_pool_in_image(x):
    """3x3 average pool, stride 1, padding 1, dividing by the number of in-image taps."""
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


def run_chain(x, *convs):
    for conv in convs:
        x = conv(x)
    return x


class FIDInceptionA(InceptionA):
    """Mixed_5b-5d with pytorch-fid's pool branch."""

    def forward(self, x):
        return torch.cat([
            self.branch1x1(x),
            run_chain(x, self.branch5x5_1, self.branch5x5_2),
            run_chain(x, self.branch3x3dbl_1, self.branch3x3dbl_2, self.branch3x3dbl_3),
            self.branch_pool(average_pool_in_image(x)),
        ], 1)


class FIDInceptionC(InceptionC):
    """Mixed_6b-6e with pytorch-fid's pool branch."""

    def forward(self, x):
        return torch.cat([
            self.branch1x1(x),
            run_chain(x, self.branch7x7_1, self.branch7x7_2, self.branch7x7_3),
            run_chain(x, self.branch7x7dbl_1, self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4,
                      self.branch7x7dbl_5),
            self.branch_pool(average_pool_in_image(x)),
        ], 1)


class FIDInceptionE(InceptionE):
    """Mixed_7b (pool "average", in-image taps only) or Mixed_7c (pool "max")."""

    def __init__(self, in_channels, pool):
        super().__init__(in_channels)
        if pool not in ("average", "max"):
            raise ValueError(f"pool must be 'average' or 'max', got {pool!r}")
        self.pool = pool

    def forward(self, x):
        branch3x3 = self.branch3x3_1(x)
        branch3x3 = torch.cat([self.branch3x3_2a(branch3x3), self.branch3x3_2b(branch3x3)], 1)
        branch3x3dbl = run_chain(x, self.branch3x3dbl_1, self.branch3x3dbl_2)
        branch3x3dbl = torch.cat([self.branch3x3dbl_3a(branch3x3dbl), self.branch3x3dbl_3b(branch3x3dbl)], 1)
        if self.pool == "max":
            pooled = F.max_pool2d(x, kernel_size=3, stride=1, padding=1)
        else:
            pooled = average_pool_in_image(x)
        return torch.cat([self.branch1x1(x), branch3x3, branch3x3dbl, self.branch_pool(pooled)], 1)


def build_fid_inception():
    """Return pytorch-fid's InceptionV3 as an eval-mode module from 299x299 images in
    [-1, 1] to (B, 2048, 1, 1) pool3 features, with random weights."""
    model = Inception3(num_classes=1008, aux_logits=False, transform_input=False, init_weights=False)
    model.Mixed_5b = FIDInceptionA(192, pool_features=32)
    model.Mixed_5c = FIDInceptionA(256, pool_features=64)
    model.Mixed_5d = FIDInceptionA(288, pool_features=64)
    model.Mixed_6b = FIDInceptionC(768, channels_7x7=128)
    model.Mixed_6c = FIDInceptionC(768, channels_7x7=160)
    model.Mixed_6d = FIDInceptionC(768, channels_7x7=160)
    model.Mixed_6e = FIDInceptionC(768, channels_7x7=192)
    model.Mixed_7b = FIDInceptionE(1280, pool="average")
    model.Mixed_7c = FIDInceptionE(2048, pool="max")

    state = model.state_dict()
    elements = sum(tensor.numel() for tensor in state.values())
    if (len(state), elements) != (INCEPTION_TENSORS, INCEPTION_ELEMENTS):
        sys.exit(f"torch_fid.py: the network's state dict has {len(state)} tensors of {elements} elements, "
                 f"but pytorch-fid's has {INCEPTION_TENSORS} of {INCEPTION_ELEMENTS}: the layouts differ")

    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")

    # The layers pytorch-fid runs for the 2048-d features: everything up to the average pool.
    features = nn.Sequential(
        model.Conv2d_1a_3x3, model.Conv2d_2a_3x3, model.Conv2d_2b_3x3, model.maxpool1,
        model.Conv2d_3b_1x1, model.Conv2d_4a_3x3, model.maxpool2,
        model.Mixed_5b, model.Mixed_5c, model.Mixed_5d, model.Mixed_6a,
        model.Mixed_6b, model.Mixed_6c, model.Mixed_6d, model.Mixed_6e,
        model.Mixed_7a, model.Mixed_7b, model.Mixed_7c, model.avgpool,
    )
    return features.eval()


@torch.no_grad()
def extract_features(network, pictures, out):
    """Write the pool3 features of uint8 pictures (B, H, W, 3) into the float64 array out (B, 2048)."""
    x = pictures.permute(0, 3, 1, 2).float() / 255.0
    x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
    x = 2.0 * x - 1.0
    out[:] = network(x).flatten(1).numpy()


def time_inception(arguments):
    network = build_fid_inception()
    generator = torch.Generator().manual_seed(1)
    pictures = torch.randint(0, 256, (arguments.batch, 32, 32, 3), dtype=torch.uint8, generator=generator)
    features = np.empty((arguments.batch, FEATURE_DIMS))

    seconds = []
    for index in range(arguments.warmup + arguments.batches):
        start = time.perf_counter()
        extract_features(network, pictures, features)
        elapsed = time.perf_counter() - start
        if index >= arguments.warmup:
            seconds.append(elapsed)
    if not np.isfinite(features).all():
        sys.exit("torch_fid.py: the Inception features are not finite")

    images_per_second = arguments.batch / torch_common.median(seconds)
    rss = torch_common.peak_rss_gb()
    print(f"inception  batch {arguments.batch}, {arguments.threads} threads: {images_per_second:8.1f} images/s "
          f"(median of {arguments.batches} batches), peak RSS {rss:.2f} GB (PyTorch)")
    print(f"RESULT inception_images_per_second={images_per_second:.1f} rss_gb={rss:.2f} "
          f"batch={arguments.batch} threads={arguments.threads}")


# ---- the Fréchet distance ---------------------------------------------------------------

def frechet_distance(mu1, sigma1, mu2, sigma2, eps=1e-6):
    """Return ||mu1 - mu2||² + Tr(sigma1) + Tr(sigma2) - 2 Tr(sqrt(sigma1 sigma2)).

    Follows pytorch-fid's calculate_frechet_distance: when sqrtm returns non-finite values,
    both covariances get eps on the diagonal and sqrtm runs again. A complex root is
    accepted when no diagonal imaginary part exceeds 1e-3, and its real part is used.
    """
    diff = mu1 - mu2
    root, _ = scipy.linalg.sqrtm(sigma1 @ sigma2, disp=False)
    if not np.isfinite(root).all():
        print(f"torch_fid.py: sqrtm gave non-finite values; adding {eps} to the diagonals", file=sys.stderr)
        offset = np.eye(sigma1.shape[0]) * eps
        root, _ = scipy.linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset), disp=False)
    if np.iscomplexobj(root):
        if np.abs(np.diagonal(root).imag).max() > 1e-3:
            raise ValueError(f"Imaginary component {np.abs(root.imag).max()}")
        root = root.real
    return diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(root)


def random_statistics(rng):
    """Return the mean and covariance of random non-negative 2048-d feature vectors."""
    features = np.abs(rng.standard_normal((FRECHET_SAMPLES, FEATURE_DIMS)))
    return features.mean(axis=0), np.cov(features, rowvar=False)


def time_frechet(arguments):
    rng = np.random.default_rng(1)
    mu1, sigma1 = random_statistics(rng)
    mu2, sigma2 = random_statistics(rng)
    seconds = []
    for _ in range(arguments.frechet_runs):
        start = time.perf_counter()
        distance = frechet_distance(mu1, sigma1, mu2, sigma2)
        seconds.append(time.perf_counter() - start)
    if not np.isfinite(distance):
        sys.exit(f"torch_fid.py: the Fréchet distance is {distance}")
    median = torch_common.median(seconds)
    print(f"frechet    {FEATURE_DIMS} dims, {arguments.threads} threads: {median:8.2f} s "
          f"(median of {arguments.frechet_runs}), distance {distance:.4f} (SciPy {scipy.__version__})")
    print(f"RESULT frechet_seconds={median:.2f} threads={arguments.threads}")


def main():
    arguments = ARGUMENTS
    torch.set_num_threads(arguments.threads)
    print(f"torch_fid.py: PyTorch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{torch_common.describe_environment()}", file=sys.stderr)
    # The Inception part runs first so that its peak RSS does not include the Fréchet part.
    if arguments.part in ("inception", "both"):
        time_inception(arguments)
    if arguments.part in ("frechet", "both"):
        time_frechet(arguments)


if __name__ == "__main__":
    main()
