#!/usr/bin/python3
"""Write the PyTorch references that tests/test_inception.c and tests/test_eval_fid.c check
mixgan's FID InceptionV3 and `mixgan eval-fid` against.

Run it from the repository root with Debian's python3-torch (1.13), python3-torchvision (0.14),
NumPy (1.24) and SciPy (1.10):

    /usr/bin/python3 tests/gen_inception_fixtures.py

CI does not run this script: the tests read the committed files. The generators are seeded,
so a rerun reproduces every file byte for byte except the legacy-format .pth files, whose
storage keys are object ids.

Inception blocks. Each block type of pytorch-fid's network is rebuilt here with small channel
counts: the stem, A (Mixed_5b-5d), B (Mixed_6a), C (Mixed_6b-6e), D (Mixed_7a), E with the
average pool (Mixed_7b) and E with the max pool (Mixed_7c). torchvision's block classes fix
their widths. The classes below therefore repeat their structure with the widths as
arguments, in the argument order of the C builders inception_define_*. They keep the branch
order, kernel sizes, paddings and strides, and build every conv from torchvision's
BasicConv2d (conv without bias, BatchNorm with eps 0.001, ReLU). Their pool branches are
pytorch-fid's: average pools that leave the padding out of the count in A, C and E (7b), and
a 3x3 max pool with stride 1 and padding 1 in E (7c). check_against_torchvision() verifies
the structure: at torchvision's widths and with torchvision's pooling, each class loads the
state dict of torchvision's block and gives the same output.

Each block gets random conv weights (He normal), random BatchNorm parameters and running
statistics, and a random standard normal input of batch 2 and a non-square size, so that a
swapped height and width shows. The negative inputs also make the max pool's padding matter:
PyTorch pads with -inf, and a pool that padded with zeros would return 0 at borders where
every tap is negative. The expected output is computed in float64 from the float32 weights
and inputs, then rounded to float32, so a comparison measures the C code's own float32 error.

tests/data/inception/blocks/<file>.pth
    the block's state dict with torch.save, keys "<block>.<branch>.conv.weight" and
    "<block>.<branch>.bn.{weight,bias,running_mean,running_var,num_batches_tracked}" (the stem's
    keys have no block prefix). The files alternate between the zip format and the legacy
    format (_use_new_zipfile_serialization=False), listed in BLOCKS below.

tests/fixtures/inception.bin (the MGFX format of tests/fixture.h), per block case
"block/<file>":
    widths  the width arguments of the C builder, in its order
    x       the input (2, C, H, W)
    y       the block's output

Image preparation. pytorch-fid turns a uint8 RGB image into the network input with
ToTensor() (x / 255 as float32), F.interpolate(size=(299, 299), mode="bilinear",
align_corners=False) and 2 * x - 1, all in float32 on the CPU. The test images are not stored:
byte i of the (H, W, 3) image, in row-major order, is test_image_byte(i, salt) below, which the
C test recomputes. Per case "prepare/<W>x<H>":
    size     width, height and salt
    sha256   the SHA-256 of the whole (3, 299, 299) float32 output in little-endian byte order,
             as 32 values, one per byte of the digest
    index    the rows and columns sampled into `sample`
    sample   the output at those rows and columns (3, len(index), len(index)), so that a
             mismatch can be located

eval-fid statistics. tests/data/eval_fid/stats_a.npz (np.savez, stored members) and
stats_b.npz (np.savez_compressed) hold float64 mu (64,) and sigma (64, 64) of two sets of
rectified correlated Gaussian features (300 and 250 rows), and expected_fid.txt the FID between
them with pytorch-fid's formula: scipy.linalg.sqrtm of sigma_a @ sigma_b, retried with 1e-6 on
the diagonals when not finite, real part kept when the imaginary diagonal is below 1e-3.
"""

import collections
import copy
import hashlib
import os
import sys

import numpy as np
import scipy.linalg
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision.transforms.functional as TF
from PIL import Image
from torchvision.models import inception as tv

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_op_fixtures import FixtureWriter  # noqa: E402  (the MGFX writer)

BLOCK_DIR = os.path.join("tests", "data", "inception", "blocks")
EVAL_FID_DIR = os.path.join("tests", "data", "eval_fid")
INCEPTION_SIZE = 299


def conv(in_channels, out_channels, kernel, stride=1, padding=0):
    return tv.BasicConv2d(in_channels, out_channels, kernel_size=kernel, stride=stride, padding=padding)


def pool_input(x, kind):
    """The input of a pool branch. "fid_avg" and "max" are pytorch-fid's variants, "tv_avg" is
    what torchvision's blocks do."""
    if kind == "fid_avg":
        return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)
    if kind == "max":
        return F.max_pool2d(x, kernel_size=3, stride=1, padding=1)
    if kind == "tv_avg":
        return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1)
    raise ValueError(kind)


class Stem(nn.Module):
    """Conv2d_1a_3x3 through the second max pool of torchvision's Inception3."""

    def __init__(self, c1a, c2a, c2b, c3b, c4a):
        super().__init__()
        self.Conv2d_1a_3x3 = conv(3, c1a, 3, stride=2)
        self.Conv2d_2a_3x3 = conv(c1a, c2a, 3)
        self.Conv2d_2b_3x3 = conv(c2a, c2b, 3, padding=1)
        self.Conv2d_3b_1x1 = conv(c2b, c3b, 1)
        self.Conv2d_4a_3x3 = conv(c3b, c4a, 3)

    def forward(self, x):
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))
        return F.max_pool2d(x, kernel_size=3, stride=2)


class BlockA(nn.Module):
    def __init__(self, in_channels, c1x1, c5x5_1, c5x5_2, c3dbl_1, c3dbl_2, pool, pool_kind="fid_avg"):
        super().__init__()
        self.pool_kind = pool_kind
        self.branch1x1 = conv(in_channels, c1x1, 1)
        self.branch5x5_1 = conv(in_channels, c5x5_1, 1)
        self.branch5x5_2 = conv(c5x5_1, c5x5_2, 5, padding=2)
        self.branch3x3dbl_1 = conv(in_channels, c3dbl_1, 1)
        self.branch3x3dbl_2 = conv(c3dbl_1, c3dbl_2, 3, padding=1)
        self.branch3x3dbl_3 = conv(c3dbl_2, c3dbl_2, 3, padding=1)
        self.branch_pool = conv(in_channels, pool, 1)

    def forward(self, x):
        b1 = self.branch1x1(x)
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        bp = self.branch_pool(pool_input(x, self.pool_kind))
        return torch.cat([b1, b5, b3, bp], 1)


class BlockB(nn.Module):
    def __init__(self, in_channels, c3x3, c3dbl_1, c3dbl_2):
        super().__init__()
        self.branch3x3 = conv(in_channels, c3x3, 3, stride=2)
        self.branch3x3dbl_1 = conv(in_channels, c3dbl_1, 1)
        self.branch3x3dbl_2 = conv(c3dbl_1, c3dbl_2, 3, padding=1)
        self.branch3x3dbl_3 = conv(c3dbl_2, c3dbl_2, 3, stride=2)

    def forward(self, x):
        b3 = self.branch3x3(x)
        bd = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        bp = F.max_pool2d(x, kernel_size=3, stride=2)
        return torch.cat([b3, bd, bp], 1)


class BlockC(nn.Module):
    def __init__(self, in_channels, out, c7, pool_kind="fid_avg"):
        super().__init__()
        self.pool_kind = pool_kind
        self.branch1x1 = conv(in_channels, out, 1)
        self.branch7x7_1 = conv(in_channels, c7, 1)
        self.branch7x7_2 = conv(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7_3 = conv(c7, out, (7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = conv(in_channels, c7, 1)
        self.branch7x7dbl_2 = conv(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = conv(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = conv(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = conv(c7, out, (1, 7), padding=(0, 3))
        self.branch_pool = conv(in_channels, out, 1)

    def forward(self, x):
        b1 = self.branch1x1(x)
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        bd = self.branch7x7dbl_1(x)
        for layer in (self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4, self.branch7x7dbl_5):
            bd = layer(bd)
        bp = self.branch_pool(pool_input(x, self.pool_kind))
        return torch.cat([b1, b7, bd, bp], 1)


class BlockD(nn.Module):
    def __init__(self, in_channels, c3x3_1, c3x3_2, c7x7x3):
        super().__init__()
        self.branch3x3_1 = conv(in_channels, c3x3_1, 1)
        self.branch3x3_2 = conv(c3x3_1, c3x3_2, 3, stride=2)
        self.branch7x7x3_1 = conv(in_channels, c7x7x3, 1)
        self.branch7x7x3_2 = conv(c7x7x3, c7x7x3, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = conv(c7x7x3, c7x7x3, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = conv(c7x7x3, c7x7x3, 3, stride=2)

    def forward(self, x):
        b3 = self.branch3x3_2(self.branch3x3_1(x))
        b7 = self.branch7x7x3_4(self.branch7x7x3_3(self.branch7x7x3_2(self.branch7x7x3_1(x))))
        bp = F.max_pool2d(x, kernel_size=3, stride=2)
        return torch.cat([b3, b7, bp], 1)


class BlockE(nn.Module):
    def __init__(self, in_channels, c1x1, c3x3, c3dbl_1, pool, pool_kind):
        super().__init__()
        self.pool_kind = pool_kind
        self.branch1x1 = conv(in_channels, c1x1, 1)
        self.branch3x3_1 = conv(in_channels, c3x3, 1)
        self.branch3x3_2a = conv(c3x3, c3x3, (1, 3), padding=(0, 1))
        self.branch3x3_2b = conv(c3x3, c3x3, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = conv(in_channels, c3dbl_1, 1)
        self.branch3x3dbl_2 = conv(c3dbl_1, c3x3, 3, padding=1)
        self.branch3x3dbl_3a = conv(c3x3, c3x3, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = conv(c3x3, c3x3, (3, 1), padding=(1, 0))
        self.branch_pool = conv(in_channels, pool, 1)

    def forward(self, x):
        b1 = self.branch1x1(x)
        t = self.branch3x3_1(x)
        b3 = torch.cat([self.branch3x3_2a(t), self.branch3x3_2b(t)], 1)
        u = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        bd = torch.cat([self.branch3x3dbl_3a(u), self.branch3x3dbl_3b(u)], 1)
        bp = self.branch_pool(pool_input(x, self.pool_kind))
        return torch.cat([b1, b3, bd, bp], 1)


# (file, block name in the state dict or None for the stem, class, widths, extra constructor
# arguments, input size (C, H, W), legacy serialization)
BLOCKS = [
    ("stem", None, Stem, (8, 8, 12, 10, 16), {}, (3, 59, 57), False),
    ("a", "Mixed_5b", BlockA, (16, 8, 6, 8, 8, 12, 4), {}, (16, 9, 11), True),
    ("b", "Mixed_6a", BlockB, (12, 16, 8, 12), {}, (12, 17, 15), False),
    ("c", "Mixed_6b", BlockC, (20, 8, 6), {}, (20, 13, 10), True),
    ("d", "Mixed_7a", BlockD, (16, 8, 12, 8), {}, (16, 9, 12), False),
    ("e_avg_pool", "Mixed_7b", BlockE, (16, 8, 12, 14, 6), {"pool_kind": "fid_avg"}, (16, 8, 8), True),
    ("e_max_pool", "Mixed_7c", BlockE, (16, 8, 12, 14, 6), {"pool_kind": "max"}, (16, 7, 9), False),
]


def randomize(module, writer):
    """He normal conv weights, BatchNorm affine parameters and running statistics away from the
    identity, so that a BatchNorm applied wrongly or not at all shows."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            fan_in = m.in_channels * m.kernel_size[0] * m.kernel_size[1]
            m.weight.data = torch.from_numpy(writer.normal(*m.weight.shape, std=np.sqrt(2.0 / fan_in)))
        elif isinstance(m, nn.BatchNorm2d):
            n = m.num_features
            m.weight.data = torch.from_numpy(writer.uniform(0.5, 1.5, n))
            m.bias.data = torch.from_numpy(writer.uniform(-0.5, 0.5, n))
            m.running_mean = torch.from_numpy(writer.uniform(-0.5, 0.5, n))
            m.running_var = torch.from_numpy(writer.uniform(0.25, 2.0, n))
    return module.eval()


def prefixed_state_dict(module, block):
    state = module.state_dict()
    if block is None:
        return state
    return collections.OrderedDict((f"{block}.{key}", value) for key, value in state.items())


def block_cases(writer):
    os.makedirs(BLOCK_DIR, exist_ok=True)
    for file, block, cls, widths, kwargs, input_size, legacy in BLOCKS:
        module = randomize(cls(*widths, **kwargs), writer)
        path = os.path.join(BLOCK_DIR, file + ".pth")
        torch.save(prefixed_state_dict(module, block), path, _use_new_zipfile_serialization=not legacy)

        x = writer.normal(2, *input_size)
        with torch.no_grad():
            y64 = copy.deepcopy(module).double()(torch.from_numpy(x).double())
            y32 = module(torch.from_numpy(x))
        case = f"block/{file}"
        writer.add(f"{case}/widths", np.array(widths, dtype=np.float32))
        writer.add(f"{case}/x", x)
        writer.add(f"{case}/y", y64.float().numpy())
        # PyTorch's own float32 error, for comparison with the C code's in the test's notes
        torch_error = (y32.double() - y64).abs().max().item()
        print(f"{path}: output {tuple(y64.shape)}, max |y| {y64.abs().max().item():.3g}, "
              f"PyTorch float32 max error {torch_error:.2g}")


def randomize_batch_norm_statistics(module, generator):
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5, generator=generator)
            m.running_var.uniform_(0.25, 2.0, generator=generator)
            m.weight.data.uniform_(0.5, 1.5, generator=generator)
            m.bias.data.uniform_(-0.5, 0.5, generator=generator)
    return module.eval()


def check_conv_geometry(ours, theirs, label):
    convs = {name: m for name, m in theirs.named_modules() if isinstance(m, nn.Conv2d)}
    for name, m in ours.named_modules():
        if isinstance(m, nn.Conv2d):
            other = convs.pop(name)
            for attribute in ("in_channels", "out_channels", "kernel_size", "stride", "padding"):
                if getattr(m, attribute) != getattr(other, attribute):
                    sys.exit(f"{label}.{name}: {attribute} {getattr(m, attribute)}, torchvision has "
                             f"{getattr(other, attribute)}")
    if convs:
        sys.exit(f"{label}: torchvision has convs {sorted(convs)} that the class here lacks")


def check_against_torchvision():
    """At torchvision's widths and with its pooling, each class must reproduce torchvision's
    block exactly: same state dict keys and shapes, same conv geometry, same output."""
    generator = torch.Generator().manual_seed(7)
    cases = [
        (BlockA(192, 64, 48, 64, 64, 96, 32, pool_kind="tv_avg"), tv.InceptionA(192, pool_features=32), (192, 9, 11)),
        (BlockB(288, 384, 64, 96), tv.InceptionB(288), (288, 17, 15)),
        (BlockC(768, 192, 128, pool_kind="tv_avg"), tv.InceptionC(768, channels_7x7=128), (768, 9, 10)),
        (BlockD(768, 192, 320, 192), tv.InceptionD(768), (768, 9, 12)),
        (BlockE(1280, 320, 384, 448, 192, pool_kind="tv_avg"), tv.InceptionE(1280), (1280, 7, 9)),
    ]
    for ours, theirs, input_size in cases:
        label = type(theirs).__name__
        randomize_batch_norm_statistics(theirs, generator)
        ours.load_state_dict(theirs.state_dict(), strict=True)
        ours.eval()
        check_conv_geometry(ours, theirs, label)
        x = torch.randn(1, *input_size, generator=generator)
        with torch.no_grad():
            if not torch.equal(ours(x), theirs(x)):
                sys.exit(f"{label}: the class here computes another output than torchvision's")

    net = randomize_batch_norm_statistics(tv.Inception3(aux_logits=False, init_weights=False), generator)
    stem = Stem(32, 32, 64, 80, 192)
    stem.load_state_dict({k: v for k, v in net.state_dict().items() if k.startswith("Conv2d_")}, strict=True)
    stem.eval()
    check_conv_geometry(stem, nn.ModuleDict({k: getattr(net, k) for k in dict(stem.named_children())}), "stem")
    x = torch.randn(1, 3, 75, 69, generator=generator)
    with torch.no_grad():
        expected = x
        for layer in (net.Conv2d_1a_3x3, net.Conv2d_2a_3x3, net.Conv2d_2b_3x3, net.maxpool1, net.Conv2d_3b_1x1,
                      net.Conv2d_4a_3x3, net.maxpool2):
            expected = layer(expected)
        if not torch.equal(stem(x), expected):
            sys.exit("stem: the class here computes another output than torchvision's Inception3")
    print("the block classes match torchvision's at its widths")


def test_image_byte(index, salt):
    """Byte `index` of a test image: a 32-bit integer hash, which the C test recomputes.
    Works elementwise on uint32 arrays, where multiplication wraps modulo 2**32."""
    h = (index + np.uint32(salt)) * np.uint32(0x9E3779B1)
    h ^= h >> np.uint32(15)
    h *= np.uint32(0x85EBCA77)
    h ^= h >> np.uint32(13)
    return (h >> np.uint32(24)).astype(np.uint8)


def prepare_cases(writer):
    index = np.array(sorted(set(range(0, INCEPTION_SIZE, 13)) | {1, 297, 298}))
    for width, height, salt in [(32, 32, 1), (17, 23, 2), (300, 200, 3), (299, 299, 4)]:
        pixels = test_image_byte(np.arange(height * width * 3, dtype=np.uint32), salt).reshape(height, width, 3)
        # pytorch-fid's path: ToTensor() on the PIL image (contiguous (3, H, W), divided by
        # 255), DataLoader's torch.stack, then InceptionV3.forward resizes and scales to [-1, 1].
        # The layout matters: a channels-last tensor, such as a permuted (N, H, W, 3) array,
        # takes another interpolate kernel whose results differ in the last bit.
        x = torch.stack([TF.to_tensor(Image.fromarray(pixels))])
        assert x.is_contiguous()
        x = F.interpolate(x, size=(INCEPTION_SIZE, INCEPTION_SIZE), mode="bilinear", align_corners=False)
        x = 2 * x - 1
        y = x[0].contiguous().numpy()
        assert y.dtype == np.float32
        digest = hashlib.sha256(y.astype("<f4").tobytes()).digest()
        case = f"prepare/{width}x{height}"
        writer.add(f"{case}/size", np.array([width, height, salt], dtype=np.float32))
        writer.add(f"{case}/sha256", np.frombuffer(digest, dtype=np.uint8).astype(np.float32))
        writer.add(f"{case}/index", index.astype(np.float32))
        writer.add(f"{case}/sample", y[:, index][:, :, index])
        print(f"prepare {width}x{height}: sha256 {digest.hex()}")


def frechet_distance(mu1, sigma1, mu2, sigma2):
    """pytorch-fid's calculate_frechet_distance."""
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


def eval_fid_statistics():
    os.makedirs(EVAL_FID_DIR, exist_ok=True)
    rng = np.random.default_rng(299)
    dim = 64

    def features(n, mean, scale):
        mixing = rng.standard_normal((dim, dim)) / np.sqrt(dim)
        return np.maximum(rng.standard_normal((n, dim)) @ mixing * scale + mean, 0).astype(np.float32)

    stats = []
    for n, mean, scale in [(300, 0.3, 1.0), (250, 0.45, 0.8)]:
        x = features(n, mean, scale).astype(np.float64)
        stats.append((np.mean(x, axis=0), np.cov(x, rowvar=False)))
    (mu_a, sigma_a), (mu_b, sigma_b) = stats
    np.savez(os.path.join(EVAL_FID_DIR, "stats_a.npz"), mu=mu_a, sigma=sigma_a)
    np.savez_compressed(os.path.join(EVAL_FID_DIR, "stats_b.npz"), mu=mu_b, sigma=sigma_b)
    fid = frechet_distance(mu_a, sigma_a, mu_b, sigma_b)
    with open(os.path.join(EVAL_FID_DIR, "expected_fid.txt"), "w") as f:
        f.write(f"{fid!r}\n")
    print(f"{EVAL_FID_DIR}: FID {fid!r}")


def main():
    torch.set_num_threads(1)
    check_against_torchvision()
    writer = FixtureWriter("inception.bin", seed=299)
    block_cases(writer)
    prepare_cases(writer)
    size = writer.write()
    eval_fid_statistics()
    block_bytes = sum(os.path.getsize(os.path.join(BLOCK_DIR, f)) for f in os.listdir(BLOCK_DIR))
    print(f"total: {size + block_bytes} bytes of fixtures and weights")
    if size + block_bytes > 600 * 1024:
        sys.exit("the Inception fixtures take more than 600 KiB: use smaller inputs or widths")


if __name__ == "__main__":
    main()
