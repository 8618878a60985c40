#!/usr/bin/python3
"""Write the PyTorch reference fixtures that tests/test_ops_torch.c compares the ops against.

Run it with Debian's python3-torch (1.13) and numpy; it writes into tests/fixtures/ wherever
it is started from:

    /usr/bin/python3 tests/gen_op_fixtures.py

CI does not run this script: the tests read the committed files in tests/fixtures/. Each file
has its own seeded generator and the output is deterministic for a given torch version, so
rerunning the script after adding a case changes only the file that contains the case.

Every case is a group of tensors named "<op>/<case>/<tensor>", for example
"conv2d/k1x7_s1_p0x3_bias/x". The C test finds cases by their "y" tensor and dispatches on
<op>, the name of the op in include/ops.h without the "op_" prefix. Per case:

    inputs and parameters   x, w, b, qkv, ... (as the op's arguments are named in ops.h)
    args                    the op's scalar arguments as floats, in the order given below
    y                       the op's output
    dy                      a random upstream gradient (standard normal), for ops with a backward
    d<name>                 the gradient of sum(y * dy) with respect to input <name>

The inputs are rounded to float32 first. The references for y and the gradients are then
computed in float64 and rounded to float32, so they differ from the exact result by at most
half an ulp and a comparison measures the C op's own float32 error. Bilinear resizing and max
pooling are the exceptions: they run in float32, because the C ops must reproduce PyTorch's
CPU float32 results bit for bit.

The file format (version 1, little-endian) is documented in tests/fixture.h.
"""

import math
import os
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F

MAGIC = b"MGFX"
VERSION = 1
MAX_DIMS = 4
MAX_NAME_BYTES = 255

OUTPUT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")


class FixtureWriter:
    """Collects named float32 tensors and writes them in the fixture format."""

    def __init__(self, filename, seed):
        self.filename = filename
        self.tensors = {}
        # One generator per file, so adding a case to one file leaves the others unchanged.
        self.rng = np.random.default_rng(seed)

    def add(self, name, array):
        array = np.asarray(array, dtype=np.float32)
        if name in self.tensors:
            raise ValueError(f"duplicate tensor name {name!r}")
        if len(name.encode()) > MAX_NAME_BYTES:
            raise ValueError(f"tensor name {name!r} is longer than {MAX_NAME_BYTES} bytes")
        if array.ndim > MAX_DIMS:
            raise ValueError(f"{name}: {array.ndim} dimensions (at most {MAX_DIMS})")
        if not np.all(np.isfinite(array)):
            raise ValueError(f"{name}: contains a NaN or an infinity")
        self.tensors[name] = array

    def normal(self, *shape, std=1.0):
        return np.asarray(self.rng.standard_normal(shape) * std, dtype=np.float32)

    def uniform(self, low, high, *shape):
        return np.asarray(self.rng.uniform(low, high, shape), dtype=np.float32)

    def write(self):
        path = os.path.join(OUTPUT_DIR, self.filename)
        chunks = [MAGIC, struct.pack("<II", VERSION, len(self.tensors))]
        for name, array in self.tensors.items():
            encoded = name.encode()
            chunks.append(struct.pack("<I", len(encoded)))
            chunks.append(encoded)
            chunks.append(struct.pack("<I", array.ndim))
            chunks.append(struct.pack(f"<{array.ndim}I", *array.shape))
            chunks.append(array.astype("<f4").tobytes())
        data = b"".join(chunks)
        with open(path, "wb") as f:
            f.write(data)
        print(f"{path}: {len(self.tensors)} tensors, {len(data)} bytes")
        return len(data)


def record(writer, case, inputs, forward, args=None, grads=(), dtype=torch.float64):
    """Run forward(**inputs) in `dtype` and store the case.

    inputs maps argument names to float32 arrays, grads lists the names that get a gradient
    (empty for forward-only ops). Returns the output tensor and the input tensors, so that a
    caller can store extra results such as BatchNorm's running statistics.
    """
    tensors = {}
    for name, array in inputs.items():
        writer.add(f"{case}/{name}", array)
        t = torch.from_numpy(np.array(array, dtype=np.float32)).to(dtype)
        t.requires_grad_(name in grads)
        tensors[name] = t
    if args is not None:
        writer.add(f"{case}/args", np.array(args, dtype=np.float32))

    y = forward(**tensors)
    writer.add(f"{case}/y", y.detach().float().numpy())
    if grads:
        dy = writer.normal(*y.shape)
        y.backward(torch.from_numpy(dy).to(dtype))
        writer.add(f"{case}/dy", dy)
        for name in grads:
            writer.add(f"{case}/d{name}", tensors[name].grad.float().numpy())
    return y, tensors


def away_from(values, points, margin):
    """Move values that lie within `margin` of any of `points` to that distance. No input then
    sits at a kink (ReLU at 0, hinge at ±1), where the gradient is a convention that PyTorch
    and the C ops need not share."""
    values = values.copy()
    for p in points:
        near = np.abs(values - p) < margin
        values[near] = p + np.where(values[near] >= p, margin, -margin)
    return values.astype(np.float32)


# ---- linear algebra --------------------------------------------------------------------------


def linear_cases():
    w = FixtureWriter("linear.bin", seed=1)
    # (case, x shape, out features, bias)
    for case, x_shape, out, bias in [
        ("2d_bias", (5, 7), 3, True),
        ("2d_no_bias", (5, 7), 3, False),
        ("3d_bias", (2, 5, 16), 12, True),
        ("4d_no_bias", (2, 3, 4, 5), 6, False),
        ("single_row_bias", (1, 9), 1, True),
        # more than 256 rows, so that a bias gradient summed in blocks of rows needs several
        ("3d_bias_300_rows", (2, 150, 4), 3, True),
    ]:
        fan_in = x_shape[-1]
        inputs = {"x": w.normal(*x_shape), "w": w.normal(out, fan_in, std=1 / math.sqrt(fan_in))}
        if bias:
            inputs["b"] = w.normal(out)
        record(w, f"linear/{case}", inputs, lambda x, w, b=None: F.linear(x, w, b), grads=tuple(inputs))

    for case, a_shape, b_shape in [
        ("b2_3x5x4", (2, 3, 5), (2, 5, 4)),
        ("b1_7x1x6", (1, 7, 1), (1, 1, 6)),
        ("b3_17x9x13", (3, 17, 9), (3, 9, 13)),
    ]:
        inputs = {"a": w.normal(*a_shape), "b": w.normal(*b_shape)}
        record(w, f"matmul/{case}", inputs, lambda a, b: torch.bmm(a, b), grads=("a", "b"))
    return w.write()


# ---- elementwise -----------------------------------------------------------------------------


def elementwise_cases():
    w = FixtureWriter("elementwise.bin", seed=2)
    # op_add and op_mul broadcast b over a's leading dims: b has a's trailing dims, optionally
    # with leading 1s.
    broadcasts = [
        ("same_2x3", (2, 3), (2, 3)),
        ("same_2x3x5x4", (2, 3, 5, 4), (2, 3, 5, 4)),
        ("bcast_2x5x4_by_1x5x4", (2, 5, 4), (1, 5, 4)),
        ("bcast_3x2x5x4_by_5x4", (3, 2, 5, 4), (5, 4)),
        ("bcast_2x5x4_by_4", (2, 5, 4), (4,)),
        ("bcast_2x5x4_by_1x1x4", (2, 5, 4), (1, 1, 4)),
        ("bcast_300x4_by_4", (300, 4), (4,)),
    ]
    for case, a_shape, b_shape in broadcasts:
        inputs = {"a": w.normal(*a_shape), "b": w.normal(*b_shape)}
        record(w, f"add/{case}", inputs, lambda a, b: a + b, grads=("a", "b"))
        inputs = {"a": w.normal(*a_shape), "b": w.normal(*b_shape)}
        record(w, f"mul/{case}", inputs, lambda a, b: a * b, grads=("a", "b"))

    for case, shape, s in [("by_minus_0.7", (2, 3, 5), -0.7), ("by_2.5", (13,), 2.5)]:
        record(w, f"scale/{case}", {"x": w.normal(*shape)}, lambda x, s=s: x * s, args=[s], grads=("x",))

    # Activations: wide inputs so that tails and saturation are covered too.
    shape = (2, 3, 5, 7)
    wide = lambda: w.uniform(-6, 6, *shape)
    record(w, "gelu/uniform_6", {"x": wide()}, lambda x: F.gelu(x), grads=("x",))
    tails = np.array([-12, -9, -7.5, -5, -3, -1, -0.5, -1e-3, 0, 1e-3, 0.5, 1, 3, 5, 7.5, 9, 12], np.float32)
    record(w, "gelu/tails", {"x": tails}, lambda x: F.gelu(x), grads=("x",))
    record(w, "relu/uniform_6", {"x": away_from(wide(), [0], 1e-3)}, lambda x: F.relu(x), grads=("x",))
    for slope in (0.2, 0.01):
        record(w, f"leaky_relu/slope_{slope}", {"x": away_from(wide(), [0], 1e-3)},
               lambda x, slope=slope: F.leaky_relu(x, slope), args=[slope], grads=("x",))
    record(w, "tanh/uniform_6", {"x": wide()}, lambda x: torch.tanh(x), grads=("x",))
    big = np.array([-30, -15, -9, -4, -1, -0.25, 0, 0.25, 1, 4, 9, 15, 30], np.float32)
    record(w, "tanh/saturated", {"x": big}, lambda x: torch.tanh(x), grads=("x",))
    record(w, "sigmoid/uniform_6", {"x": wide()}, lambda x: torch.sigmoid(x), grads=("x",))
    record(w, "sigmoid/saturated", {"x": big}, lambda x: torch.sigmoid(x), grads=("x",))

    # Reductions; axis -1 reduces everything to a scalar.
    for op, fn in (("sum", torch.sum), ("mean", torch.mean)):
        for case, shape, axis in [
            ("2x3x4_axis0", (2, 3, 4), 0),
            ("2x3x4_axis1", (2, 3, 4), 1),
            ("2x3x4_axis2", (2, 3, 4), 2),
            ("2x3x4_all", (2, 3, 4), -1),
            ("2x3x4x5_axis1", (2, 3, 4, 5), 1),
            ("2x3x4x5_axis3", (2, 3, 4, 5), 3),
            ("7_axis0", (7,), 0),
            ("3x5x7_all", (3, 5, 7), -1),
        ]:
            forward = (lambda x, fn=fn: fn(x)) if axis < 0 else (lambda x, fn=fn, axis=axis: fn(x, dim=axis))
            record(w, f"{op}/{case}", {"x": w.normal(*shape)}, forward, args=[axis], grads=("x",))
        # More than 16384 elements, so that a sum split into blocks runs several. Forward only,
        # because the gradient of a full reduction is a constant that the cases above check.
        record(w, f"{op}/17x1000_all_forward", {"x": w.normal(17, 1000)}, lambda x, fn=fn: fn(x), args=[-1])
    return w.write()


# ---- convolutions ----------------------------------------------------------------------------


def conv_cases():
    w = FixtureWriter("conv.bin", seed=3)
    # (case, batch, in channels, out channels, H, W, KH, KW, stride (h, w), padding (h, w), bias)
    conv2d = [
        ("k3_s1_p1_bias", 2, 3, 4, 8, 8, 3, 3, (1, 1), (1, 1), True),
        ("k4_s2_p1", 2, 3, 5, 8, 8, 4, 4, (2, 2), (1, 1), False),
        ("k4_s1_p0_to_1x1", 2, 6, 1, 4, 4, 4, 4, (1, 1), (0, 0), False),
        ("k4_s4_p0_patch_bias", 2, 3, 8, 8, 8, 4, 4, (4, 4), (0, 0), True),
        ("k1_s1_p0_bias", 2, 5, 3, 6, 7, 1, 1, (1, 1), (0, 0), True),
        ("k1x7_s1_p0x3_bias", 2, 3, 4, 9, 11, 1, 7, (1, 1), (0, 3), True),
        ("k7x1_s1_p3x0", 2, 3, 4, 11, 9, 7, 1, (1, 1), (3, 0), False),
        ("k3x1_s1_p1x0_bias", 2, 4, 3, 7, 6, 3, 1, (1, 1), (1, 0), True),
        ("k1x3_s1_p0x1", 2, 4, 3, 6, 7, 1, 3, (1, 1), (0, 1), False),
        ("k3_s2_p0_odd", 2, 3, 4, 9, 7, 3, 3, (2, 2), (0, 0), True),
        ("k3_s2_p1_odd", 1, 2, 3, 7, 5, 3, 3, (2, 2), (1, 1), False),
        ("k3x2_s2x1_p1x0_bias", 2, 3, 4, 7, 6, 3, 2, (2, 1), (1, 0), True),
        ("k5_s3_p2", 2, 2, 3, 10, 11, 5, 5, (3, 3), (2, 2), False),
        ("k1x3_s1x2_p0x1_bias", 2, 3, 2, 5, 9, 1, 3, (1, 2), (0, 1), True),
        ("k3x2_s2x2_p1x0", 2, 2, 3, 7, 8, 3, 2, (2, 2), (1, 0), False),
        ("k1_s1_p0_batch1_bias", 1, 3, 2, 4, 5, 1, 1, (1, 1), (0, 0), True),
        # 32×32 maps in a batch of 3: an implementation that runs im2col and sgemm on chunks
        # of images sized by the map (the C ops at the time of writing) runs several chunks,
        # the last one partial.
        ("k3_s1_p1_bias_batch3_32x32", 3, 1, 2, 32, 32, 3, 3, (1, 1), (1, 1), True),
        ("k1_s1_p0_batch3_32x32", 3, 2, 1, 32, 32, 1, 1, (1, 1), (0, 0), False),
    ]
    for case, n, c, o, h, width, kh, kw, stride, pad, bias in conv2d:
        fan_in = c * kh * kw
        inputs = {"x": w.normal(n, c, h, width), "w": w.normal(o, c, kh, kw, std=1 / math.sqrt(fan_in))}
        if bias:
            inputs["b"] = w.normal(o)
        record(w, f"conv2d/{case}", inputs,
               lambda x, w, b=None, stride=stride, pad=pad: F.conv2d(x, w, b, stride, pad),
               args=[stride[0], stride[1], pad[0], pad[1]], grads=tuple(inputs))

    # ConvTranspose2d weights are (in channels, out channels, KH, KW).
    conv_transpose2d = [
        ("k4_s1_p0_from_1x1", 2, 6, 4, 1, 1, 4, 4, (1, 1), (0, 0), False),
        ("k4_s2_p1", 2, 4, 3, 4, 4, 4, 4, (2, 2), (1, 1), False),
        ("k4_s2_p1_bias_odd", 2, 3, 2, 3, 5, 4, 4, (2, 2), (1, 1), True),
        ("k3_s2_p1_odd", 2, 3, 4, 5, 3, 3, 3, (2, 2), (1, 1), True),
        ("k3_s1_p1", 1, 3, 2, 6, 5, 3, 3, (1, 1), (1, 1), False),
        ("k1x7_s1_p0x3_bias", 2, 3, 4, 5, 9, 1, 7, (1, 1), (0, 3), True),
        ("k7x1_s1_p3x0", 2, 3, 2, 9, 5, 7, 1, (1, 1), (3, 0), False),
        ("k3x1_s2x1_p1x0_bias", 2, 2, 3, 4, 5, 3, 1, (2, 1), (1, 0), True),
        ("k1x3_s1x2_p0x1", 2, 2, 3, 4, 5, 1, 3, (1, 2), (0, 1), False),
        ("k2_s2_p0", 2, 4, 3, 3, 4, 2, 2, (2, 2), (0, 0), True),
        ("k5_s3_p2", 1, 2, 3, 4, 3, 5, 5, (3, 3), (2, 2), False),
        ("k3_s1_p1_bias_batch3_32x32", 3, 1, 2, 32, 32, 3, 3, (1, 1), (1, 1), True),
    ]
    for case, n, c, o, h, width, kh, kw, stride, pad, bias in conv_transpose2d:
        fan_in = c * kh * kw
        inputs = {"x": w.normal(n, c, h, width), "w": w.normal(c, o, kh, kw, std=1 / math.sqrt(fan_in))}
        if bias:
            inputs["b"] = w.normal(o)
        record(w, f"conv_transpose2d/{case}", inputs,
               lambda x, w, b=None, stride=stride, pad=pad: F.conv_transpose2d(x, w, b, stride, pad),
               args=[stride[0], stride[1], pad[0], pad[1]], grads=tuple(inputs))
    return w.write()


# ---- normalisation ---------------------------------------------------------------------------


def norm_cases():
    w = FixtureWriter("norm.bin", seed=4)
    # BatchNorm2d. args: training (0 or 1), momentum, eps. The running statistics before the
    # call are inputs; after the call they are outputs, stored as running_mean_out and
    # running_var_out (unchanged in eval mode).
    for case, shape, training, momentum, eps in [
        ("train_4x3x5x5", (4, 3, 5, 5), True, 0.1, 1e-5),
        ("train_2x5x3x4_m0.3_eps1e-3", (2, 5, 3, 4), True, 0.3, 1e-3),
        ("train_8x2x1x1", (8, 2, 1, 1), True, 0.1, 1e-5),
        ("eval_3x4x3x5", (3, 4, 3, 5), False, 0.1, 1e-5),
    ]:
        c = shape[1]
        # An offset and a scale per channel, so that normalisation has something to undo.
        x = (w.normal(*shape) * w.uniform(0.5, 3, 1, c, 1, 1) + w.normal(1, c, 1, 1)).astype(np.float32)
        inputs = {
            "x": x,
            "weight": (1 + w.normal(c, std=0.3)).astype(np.float32),
            "bias": w.normal(c, std=0.5),
            "running_mean": w.normal(c, std=0.5),
            "running_var": w.uniform(0.5, 2, c),
        }

        def forward(x, weight, bias, running_mean, running_var, training=training, momentum=momentum, eps=eps):
            return F.batch_norm(x, running_mean, running_var, weight, bias, training, momentum, eps)

        _, tensors = record(w, f"batch_norm2d/{case}", inputs, forward, args=[float(training), momentum, eps],
                            grads=("x", "weight", "bias"))
        w.add(f"batch_norm2d/{case}/running_mean_out", tensors["running_mean"].detach().float().numpy())
        w.add(f"batch_norm2d/{case}/running_var_out", tensors["running_var"].detach().float().numpy())

    # LayerNorm over the last axis. args: eps.
    for case, shape, eps in [
        ("2x7x16", (2, 7, 16), 1e-5),
        ("3x5", (3, 5), 1e-5),
        ("1x65x64", (1, 65, 64), 1e-5),
        ("2x3x2x8_eps1e-3", (2, 3, 2, 8), 1e-3),
    ]:
        d = shape[-1]
        x = (w.normal(*shape) * 2 + 0.5).astype(np.float32)
        inputs = {"x": x, "weight": (1 + w.normal(d, std=0.3)).astype(np.float32), "bias": w.normal(d, std=0.5)}
        record(w, f"layer_norm/{case}", inputs,
               lambda x, weight, bias, eps=eps: F.layer_norm(x, (x.shape[-1],), weight, bias, eps),
               args=[eps], grads=tuple(inputs))
    return w.write()


# ---- attention -------------------------------------------------------------------------------


def attention_reference(qkv, heads):
    """Self-attention written out step by step: split q, k, v along the last axis, split each
    into contiguous heads, softmax(q·kᵀ / sqrt(head size))·v, heads concatenated again."""
    batch, tokens, three_d = qkv.shape
    d = three_d // 3
    head_size = d // heads
    q, k, v = qkv[..., :d], qkv[..., d:2 * d], qkv[..., 2 * d:]

    def split(t):  # (B, N, D) -> (B, heads, N, head size)
        return t.reshape(batch, tokens, heads, head_size).transpose(1, 2)

    scores = split(q) @ split(k).transpose(-2, -1) / math.sqrt(head_size)
    probabilities = torch.softmax(scores, dim=-1)
    out = probabilities @ split(v)
    return out.transpose(1, 2).reshape(batch, tokens, d)


def attention_cases():
    w = FixtureWriter("attention.bin", seed=5)
    # (case, batch, tokens, D, heads, input scale). With more than 64 tokens, an
    # implementation working on blocks of query rows runs several blocks, the last one
    # partial. The larger input scale gives peaked softmax rows.
    for case, batch, tokens, d, heads, scale in [
        ("n7_d8_h1", 2, 7, 8, 1, 1.0),
        ("n7_d16_h2", 2, 7, 16, 2, 1.0),
        ("n9_d16_h4", 1, 9, 16, 4, 1.0),
        ("n65_d32_h4", 2, 65, 32, 4, 1.0),
        ("n70_d16_h2", 1, 70, 16, 2, 1.0),
        ("n70_d12_h3_peaked", 1, 70, 12, 3, 3.0),
        ("n130_d8_h2", 1, 130, 8, 2, 1.0),
        ("n1_d8_h2", 3, 1, 8, 2, 1.0),
    ]:
        qkv = (w.normal(batch, tokens, 3 * d) * scale).astype(np.float32)
        record(w, f"attention/{case}", {"qkv": qkv}, lambda qkv, heads=heads: attention_reference(qkv, heads),
               args=[heads], grads=("qkv",))
    return w.write()


# ---- layout ----------------------------------------------------------------------------------


def layout_cases():
    w = FixtureWriter("layout.bin", seed=6)

    def tokens_to_image(x, height, width):  # (B, H·W, D) -> (B, D, H, W)
        return x.transpose(1, 2).reshape(x.shape[0], x.shape[2], height, width)

    def image_to_tokens(x):  # (B, C, H, W) -> (B, H·W, C)
        return x.flatten(2).transpose(1, 2)

    def patch_merge(x, height, width):  # (B, H·W, D) -> (B, H/2·W/2, 4·D), order (0,0) (0,1) (1,0) (1,1)
        batch, _, d = x.shape
        grid = x.reshape(batch, height // 2, 2, width // 2, 2, d)      # b, i, row offset, j, col offset, d
        grid = grid.permute(0, 1, 3, 2, 4, 5)                         # b, i, j, row offset, col offset, d
        return grid.reshape(batch, (height // 2) * (width // 2), 4 * d)

    for case, batch, height, width, d in [("3x4_d5", 2, 3, 4, 5), ("1x1_d3", 2, 1, 1, 3), ("5x2_d1", 1, 5, 2, 1)]:
        record(w, f"tokens_to_image/{case}", {"x": w.normal(batch, height * width, d)},
               lambda x, height=height, width=width: tokens_to_image(x, height, width),
               args=[height, width], grads=("x",))
        record(w, f"image_to_tokens/{case}", {"x": w.normal(batch, d, height, width)}, image_to_tokens,
               grads=("x",))

    for case, shape, factor in [("2x12x3x5_r2", (2, 12, 3, 5), 2), ("1x8x4x4_r2", (1, 8, 4, 4), 2),
                                ("2x18x2x3_r3", (2, 18, 2, 3), 3)]:
        record(w, f"pixel_shuffle/{case}", {"x": w.normal(*shape)},
               lambda x, factor=factor: F.pixel_shuffle(x, factor), args=[factor], grads=("x",))

    for case, batch, height, width, d in [("4x6_d5", 2, 4, 6, 5), ("2x2_d3", 1, 2, 2, 3), ("6x4_d2", 2, 6, 4, 2)]:
        record(w, f"patch_merge/{case}", {"x": w.normal(batch, height * width, d)},
               lambda x, height=height, width=width: patch_merge(x, height, width),
               args=[height, width], grads=("x",))

    for case, batch, tokens, d in [("b2_n7_d6", 2, 7, 6), ("b3_n1_d4", 3, 1, 4)]:
        inputs = {"x": w.normal(batch, tokens, d), "token": w.normal(1, 1, d)}
        record(w, f"prepend_token/{case}", inputs,
               lambda x, token: torch.cat([token.expand(x.shape[0], 1, x.shape[2]), x], dim=1),
               grads=("x", "token"))

    # concat_channels: inputs x0, x1, ... concatenated in that order.
    for case, channels in [("three_1_3_2", (1, 3, 2)), ("two_4_4", (4, 4)), ("one_2", (2,))]:
        inputs = {f"x{i}": w.normal(2, c, 3, 4) for i, c in enumerate(channels)}
        record(w, f"concat_channels/{case}", inputs, lambda **xs: torch.cat(list(xs.values()), dim=1),
               grads=tuple(inputs))

    for case, tokens, index in [("n7_first", 7, 0), ("n7_last", 7, 6), ("n7_middle", 7, 3), ("n1", 1, 0)]:
        record(w, f"slice_token/{case}", {"x": w.normal(2, tokens, 6)},
               lambda x, index=index: x[:, index, :], args=[index], grads=("x",))
    return w.write()


# ---- pooling and resizing --------------------------------------------------------------------


def pool_cases():
    w = FixtureWriter("pool.bin", seed=7)
    # avg_pool2d args: kernel, stride, pad, count_include_pad (0 or 1).
    for case, shape, kernel, stride, pad in [
        ("k3_s1_p1", (2, 3, 7, 9), 3, 1, 1),
        ("k3_s2_p1", (2, 3, 7, 9), 3, 2, 1),
        ("k3_s2_p1_even", (1, 2, 8, 6), 3, 2, 1),
        ("k2_s2_p0", (2, 2, 6, 7), 2, 2, 0),
        ("k3_s2_p0", (1, 3, 9, 8), 3, 2, 0),
        ("k5_s1_p2", (1, 2, 6, 5), 5, 1, 2),
    ]:
        for include in (True, False):
            name = f"avg_pool2d/{case}_{'include' if include else 'exclude'}_pad"
            record(w, name, {"x": w.normal(*shape)},
                   lambda x, k=kernel, s=stride, p=pad, inc=include: F.avg_pool2d(x, k, s, p, count_include_pad=inc),
                   args=[kernel, stride, pad, float(include)], grads=("x",))

    # max_pool2d is forward only and exact, so it runs in float32. args: kernel, stride, pad.
    for case, shape, kernel, stride, pad in [
        ("k3_s2_p0", (2, 3, 9, 8), 3, 2, 0),
        ("k3_s2_p1", (2, 3, 7, 9), 3, 2, 1),
        ("k3_s1_p1", (1, 2, 5, 6), 3, 1, 1),
        ("k2_s2_p0", (2, 2, 6, 7), 2, 2, 0),
    ]:
        x = w.normal(*shape)
        # All negative in one channel, so a padding tap taken as 0 instead of -inf would win.
        x[:, 0] = -np.abs(x[:, 0]) - 0.1
        record(w, f"max_pool2d/{case}", {"x": x}, lambda x, k=kernel, s=stride, p=pad: F.max_pool2d(x, k, s, p),
               args=[kernel, stride, pad], dtype=torch.float32)

    for case, shape in [("2x3x5x7", (2, 3, 5, 7)), ("1x4x1x1", (1, 4, 1, 1)), ("2x2x8x8", (2, 2, 8, 8))]:
        record(w, f"global_avg_pool/{case}", {"x": w.normal(*shape)}, lambda x: x.mean(dim=(2, 3)), grads=("x",))
    return w.write()


def resize_cases():
    w = FixtureWriter("resize.bin", seed=8)
    # Forward only, in float32: the C op must match torch.nn.functional.interpolate exactly.
    # The output size is the shape of y. Every case has at least 2 channels because PyTorch
    # sends a (B, 1, H, W) tensor, which is also channels-last contiguous, to its channels-last
    # kernel, and that kernel rounds differently from the NCHW kernel that RGB images take.
    # The 224 -> 299 mapping is covered along each axis by a thin strip, which keeps the file
    # small.
    for case, shape, size in [
        ("up_32x32_to_299x299", (1, 2, 32, 32), (299, 299)),
        ("up_7x5_to_13x11", (2, 3, 7, 5), (13, 11)),
        ("up_224x6_to_299x9", (1, 2, 224, 6), (299, 9)),
        ("up_6x224_to_9x299", (1, 2, 6, 224), (9, 299)),
        ("up_5x3_to_9x12", (1, 2, 5, 3), (9, 12)),
        ("down_13x17_to_5x6", (2, 2, 13, 17), (5, 6)),
        ("down_32x32_to_7x9", (1, 2, 32, 32), (7, 9)),
        ("same_6x4", (1, 2, 6, 4), (6, 4)),
    ]:
        record(w, f"resize_bilinear/{case}", {"x": w.uniform(-1, 1, *shape)},
               lambda x, size=size: F.interpolate(x, size=size, mode="bilinear", align_corners=False),
               dtype=torch.float32)
    return w.write()


# ---- losses ----------------------------------------------------------------------------------


def loss_cases():
    w = FixtureWriter("loss.bin", seed=9)
    logits = lambda n: w.normal(n, 1, std=2.0)
    # BCE with logits against a constant target. args: target. The wide case checks that large
    # logits do not overflow.
    for case, x, target in [
        ("target_1", logits(8), 1.0),
        ("target_0", logits(8), 0.0),
        ("target_0.9", logits(5), 0.9),
        ("wide_target_1", np.array([-40, -20, -5, 0, 5, 20, 40], np.float32), 1.0),
        ("wide_target_0", np.array([-40, -20, -5, 0, 5, 20, 40], np.float32), 0.0),
    ]:
        record(w, f"bce_with_logits/{case}", {"x": x},
               lambda x, target=target: F.binary_cross_entropy_with_logits(x, torch.full_like(x, target)),
               args=[target], grads=("x",))

    # Hinge losses, inputs kept away from the kinks at ±1. hinge_d args: real (0 or 1).
    for real in (True, False):
        x = away_from(logits(9), [-1, 1], 1e-2)
        sign = -1 if real else 1
        record(w, f"hinge_d/{'real' if real else 'fake'}", {"x": x},
               lambda x, sign=sign: F.relu(1 + sign * x).mean(), args=[float(real)], grads=("x",))
    record(w, "hinge_g/n9", {"x": logits(9)}, lambda x: -x.mean(), grads=("x",))
    record(w, "hinge_g/n1", {"x": logits(1)}, lambda x: -x.mean(), grads=("x",))
    return w.write()


def main():
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    os.makedirs(OUTPUT_DIR, exist_ok=True)
    total = 0
    for write_family in (linear_cases, elementwise_cases, conv_cases, norm_cases, attention_cases,
                         layout_cases, pool_cases, resize_cases, loss_cases):
        total += write_family()
    print(f"total: {total} bytes")
    if total > 2 * 1024 * 1024:
        sys.exit(f"the fixtures take {total} bytes; keep them under 2 MiB")


if __name__ == "__main__":
    main()
