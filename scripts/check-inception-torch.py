#!/usr/bin/env python3
"""Check mixgan's FID against PyTorch on the full FID InceptionV3 with random weights.

Builds pytorch-fid's network layout (torchvision's Inception3 with 1008 classes and the
four FID block variants) with random full-size weights, saves them with torch.save in both
serializations, and runs the pytorch-fid pipeline (uint8 -> /255 -> bilinear resize to 299 with
align_corners=False -> 2x-1 -> pool3 features -> float64 mean and covariance -> Frechet
distance with scipy's sqrtm) on two sets of images from the bundled dataset. It then runs
`mixgan eval-fid` on the same images and weights and prints the largest differences in the
statistics and in the FID.

Needs Debian's python3-torch, python3-torchvision, python3-numpy, python3-scipy and
python3-pil; CI does not run it. Usage, from the repository root after `make`:

    python3 scripts/check-inception-torch.py [--images 100] [--threads 2] [--dataset FILE]

With 2,048 or more images per side the covariances have full rank, which is where the FID of
both tools is meant to agree to 1e-3; fewer images make scipy's sqrtm of the rank-deficient
product inexact.
"""
import argparse
import os
import re
import struct
import subprocess
import sys
import tempfile

import numpy as np
import scipy.linalg
import torch
import torch.nn.functional as F
from PIL import Image
from torchvision.models.inception import Inception3, InceptionA, InceptionC, InceptionE


class FIDInceptionA(InceptionA):
    """InceptionA whose average pool leaves the padding out of the count."""

    def forward(self, x):
        branch1x1 = self.branch1x1(x)
        branch5x5 = self.branch5x5_2(self.branch5x5_1(x))
        branch3x3dbl = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        pool = F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)
        return torch.cat([branch1x1, branch5x5, branch3x3dbl, self.branch_pool(pool)], 1)


class FIDInceptionC(InceptionC):
    """InceptionC whose average pool leaves the padding out of the count."""

    def forward(self, x):
        branch1x1 = self.branch1x1(x)
        branch7x7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        dbl = self.branch7x7dbl_1(x)
        for layer in (self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4, self.branch7x7dbl_5):
            dbl = layer(dbl)
        pool = F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)
        return torch.cat([branch1x1, branch7x7, dbl, self.branch_pool(pool)], 1)


class FIDInceptionE(InceptionE):
    """InceptionE with the FID pool branch: average without padding (7b) or max (7c)."""

    def __init__(self, in_channels, max_pool):
        super().__init__(in_channels)
        self.max_pool = max_pool

    def forward(self, x):
        branch1x1 = self.branch1x1(x)
        t = self.branch3x3_1(x)
        branch3x3 = torch.cat([self.branch3x3_2a(t), self.branch3x3_2b(t)], 1)
        u = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        branch3x3dbl = torch.cat([self.branch3x3dbl_3a(u), self.branch3x3dbl_3b(u)], 1)
        if self.max_pool:
            pool = F.max_pool2d(x, kernel_size=3, stride=1, padding=1)
        else:
            pool = F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)
        return torch.cat([branch1x1, branch3x3, branch3x3dbl, self.branch_pool(pool)], 1)


def build_network(seed):
    """The FID InceptionV3 with random weights and BatchNorm statistics, in eval mode."""
    torch.manual_seed(seed)
    net = Inception3(num_classes=1008, aux_logits=False, init_weights=False)
    net.Mixed_5b = FIDInceptionA(192, pool_features=32)
    net.Mixed_5c = FIDInceptionA(256, pool_features=64)
    net.Mixed_5d = FIDInceptionA(288, pool_features=64)
    net.Mixed_6b = FIDInceptionC(768, channels_7x7=128)
    net.Mixed_6c = FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6d = FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6e = FIDInceptionC(768, channels_7x7=192)
    net.Mixed_7b = FIDInceptionE(1280, max_pool=False)
    net.Mixed_7c = FIDInceptionE(2048, max_pool=True)
    for module in net.modules():
        if isinstance(module, torch.nn.Conv2d):
            fan_in = module.in_channels * module.kernel_size[0] * module.kernel_size[1]
            torch.nn.init.normal_(module.weight, std=(2.0 / fan_in) ** 0.5)
        elif isinstance(module, torch.nn.BatchNorm2d):
            module.eps = 0.001
            torch.nn.init.uniform_(module.weight, 0.8, 1.2)
            torch.nn.init.uniform_(module.bias, -0.1, 0.1)
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    return net.eval()


def pool3_features(net, images, batch=50):
    """pytorch-fid's pipeline on uint8 images (N, H, W, 3): float64 features (N, 2048)."""
    layers = [net.Conv2d_1a_3x3, net.Conv2d_2a_3x3, net.Conv2d_2b_3x3, torch.nn.MaxPool2d(3, 2),
              net.Conv2d_3b_1x1, net.Conv2d_4a_3x3, torch.nn.MaxPool2d(3, 2), net.Mixed_5b, net.Mixed_5c,
              net.Mixed_5d, net.Mixed_6a, net.Mixed_6b, net.Mixed_6c, net.Mixed_6d, net.Mixed_6e, net.Mixed_7a,
              net.Mixed_7b, net.Mixed_7c]
    out = np.empty((len(images), 2048))
    with torch.no_grad():
        for start in range(0, len(images), batch):
            # contiguous NCHW as pytorch-fid's ToTensor gives: a channels-last view would take
            # PyTorch's other bilinear kernel, which rounds differently in the last bit
            x = torch.from_numpy(images[start:start + batch].copy()).permute(0, 3, 1, 2).contiguous().float().div(255)
            x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
            x = 2 * x - 1
            for layer in layers:
                x = layer(x)
            out[start:start + len(x)] = F.adaptive_avg_pool2d(x, 1).flatten(1).numpy()
    return out


def frechet_distance(mu1, sigma1, mu2, sigma2):
    """pytorch-fid's formula, with its 1e-6 offset retry and imaginary-part check."""
    diff = mu1 - mu2
    covmean, _ = scipy.linalg.sqrtm(sigma1.dot(sigma2), disp=False)
    if not np.isfinite(covmean).all():
        offset = np.eye(sigma1.shape[0]) * 1e-6
        covmean = scipy.linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError("imaginary component %g" % np.max(np.abs(covmean.imag)))
        covmean = covmean.real
    return diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean)


def read_dataset(path):
    """The uint8 pixels (count, H, W, C) of a mixgan dataset file."""
    with open(path, "rb") as f:
        data = f.read()
    magic, _version, count, height, width, channels = struct.unpack_from("<4sIIIII", data, 0)
    assert magic == b"MGDS", path
    pixels = np.frombuffer(data, dtype=np.uint8, count=count * height * width * channels, offset=64)
    return pixels.reshape(count, height, width, channels)


def write_folder(images, folder):
    os.makedirs(folder)
    for i, image in enumerate(images):
        Image.fromarray(image).save(os.path.join(folder, "%05d.png" % i))


def read_npz_stats(path):
    stats = np.load(path)
    return stats["mu"], stats["sigma"]


def run_mixgan(args, env):
    result = subprocess.run(["./mixgan", "eval-fid"] + args, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        sys.exit("mixgan eval-fid failed:\n" + result.stderr)
    return result.stdout


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=100, help="images per side (default 100)")
    parser.add_argument("--threads", type=int, default=2, help="threads for PyTorch and mixgan (default 2)")
    parser.add_argument("--dataset", default="data/dogs32.bin",
                        help="mixgan dataset holding at least 2·IMAGES images (default: the bundled sample)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    images = read_dataset(args.dataset)
    if len(images) < 2 * args.images:
        sys.exit("%s has %d images; --images %d needs %d" % (args.dataset, len(images), args.images, 2 * args.images))
    side_a, side_b = images[:args.images], images[args.images:2 * args.images]
    net = build_network(seed=1)
    features_a, features_b = pool3_features(net, side_a), pool3_features(net, side_b)
    mu_a, sigma_a = features_a.mean(axis=0), np.cov(features_a, rowvar=False)
    mu_b, sigma_b = features_b.mean(axis=0), np.cov(features_b, rowvar=False)
    torch_fid = frechet_distance(mu_a, sigma_a, mu_b, sigma_b)
    print("PyTorch FID: %.6f" % torch_fid)

    env = dict(os.environ, MIXGAN_THREADS=str(args.threads))
    with tempfile.TemporaryDirectory() as tmp:
        folder_a, folder_b = os.path.join(tmp, "a"), os.path.join(tmp, "b")
        write_folder(side_a, folder_a)
        write_folder(side_b, folder_b)
        for label, legacy in (("zip", False), ("legacy", True)):
            weights = os.path.join(tmp, "inception_%s.pth" % label)
            torch.save(net.state_dict(), weights, _use_new_zipfile_serialization=not legacy)
            stats_a, stats_b = os.path.join(tmp, "a_%s.npz" % label), os.path.join(tmp, "b_%s.npz" % label)
            run_mixgan(["--inception", weights, "--save-stats", stats_a, folder_a], env)
            mu, sigma = read_npz_stats(stats_a)
            line = "%-6s serialization: mu max |diff| %.2e, sigma max |diff| %.2e" % (
                label, np.abs(mu - mu_a).max(), np.abs(sigma - sigma_a).max())
            if not legacy:
                # the FID needs B's statistics too; one serialization is enough for it
                run_mixgan(["--inception", weights, "--save-stats", stats_b, folder_b], env)
                out = run_mixgan([stats_a, stats_b], env)
                fid = float(re.search(r"FID: ([0-9.eE+-]+)", out).group(1))
                line += "; mixgan FID %.6f, |difference| %.2e" % (fid, abs(fid - torch_fid))
            print(line)


if __name__ == "__main__":
    main()
