"""mixgan's layer-list networks in PyTorch: layers, building from a config, initialisation.

build_network() turns a "generator" or "discriminator" list of a mixgan config into an
nn.Sequential with the same layers, parameter shapes and forward FLOP count as mixgan's
network.c builds. init_network() initialises it as mixgan's network_init() does.

Import this module only after torch_common.ensure_benchmark_environment() has run.
"""
import math
from dataclasses import dataclass, replace

import torch
import torch.nn as nn
import torch.nn.functional as F


# ---- shapes flowing through a network -------------------------------------------------

@dataclass(frozen=True)
class Flow:
    """Per-sample shape between two layers, as mixgan's FlowShape describes it.

    kind is "vector" (channels), "tokens" (tokens x channels, on a height x width grid
    when has_grid) or "image" (channels x height x width).
    """
    kind: str
    channels: int
    tokens: int = 0
    height: int = 0
    width: int = 0
    has_grid: bool = False

    def describe(self):
        if self.kind == "vector":
            return f"vector {self.channels}"
        if self.kind == "tokens":
            return f"tokens {self.tokens}x{self.channels}"
        return f"image {self.channels}x{self.height}x{self.width}"


class ConfigError(Exception):
    """A layer list that does not describe a valid network."""


# ---- layers without a torch.nn equivalent ---------------------------------------------

class Reshape(nn.Module):
    """Reshape each sample to `shape`, keeping the batch dimension."""

    def __init__(self, shape):
        super().__init__()
        self.shape = tuple(shape)

    def forward(self, x):
        return x.reshape(x.shape[0], *self.shape)


class PositionalEmbedding(nn.Module):
    def __init__(self, tokens, dim):
        super().__init__()
        self.embedding = nn.Parameter(torch.zeros(1, tokens, dim))

    def forward(self, x):
        return x + self.embedding


class ClassToken(nn.Module):
    """Prepend one learned token to the sequence."""

    def __init__(self, dim):
        super().__init__()
        self.token = nn.Parameter(torch.zeros(1, 1, dim))

    def forward(self, x):
        return torch.cat([self.token.expand(x.shape[0], -1, -1), x], dim=1)


class TokensToImage(nn.Module):
    """(B, H*W, C) tokens in raster order to a (B, C, H, W) image."""

    def __init__(self, height, width):
        super().__init__()
        self.height, self.width = height, width

    def forward(self, x):
        return x.transpose(1, 2).reshape(x.shape[0], x.shape[2], self.height, self.width)


class ImageToTokens(nn.Module):
    def forward(self, x):
        return x.flatten(2).transpose(1, 2)


class PatchMerge(nn.Module):
    """Concatenate the tokens of each 2x2 neighbourhood: (B, H*W, C) to (B, H*W/4, 4C).

    The four tokens at (2i, 2j), (2i, 2j+1), (2i+1, 2j), (2i+1, 2j+1) are concatenated in
    that order.
    """

    def __init__(self, height, width):
        super().__init__()
        self.height, self.width = height, width

    def forward(self, x):
        batch, _, channels = x.shape
        x = x.reshape(batch, self.height // 2, 2, self.width // 2, 2, channels)
        x = x.permute(0, 1, 3, 2, 4, 5)
        return x.reshape(batch, (self.height // 2) * (self.width // 2), 4 * channels)


class SelectToken(nn.Module):
    def __init__(self, index):
        super().__init__()
        self.index = index

    def forward(self, x):
        return x[:, self.index]


class MeanTokens(nn.Module):
    def forward(self, x):
        return x.mean(dim=1)


class TransformerBlock(nn.Module):
    """Pre-norm block: x + Proj(Attention(LN1(x))), then x + FC2(GELU(FC1(LN2(x)))).

    One Linear makes q, k and v (in that order, each split into heads contiguously), and
    attention scores are scaled by 1/sqrt(dim/heads). GELU is the exact erf form.
    """

    def __init__(self, dim, heads, hidden):
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim, eps=1e-5)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim, eps=1e-5)
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def attention(self, x):
        batch, tokens, dim = x.shape
        head_dim = dim // self.heads
        # (B, N, 3D) -> (3, B, heads, N, head_dim)
        qkv = self.qkv(x).reshape(batch, tokens, 3, self.heads, head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        scores = torch.matmul(q, k.transpose(-2, -1)) * (1.0 / math.sqrt(head_dim))
        out = torch.matmul(scores.softmax(dim=-1), v)
        return out.transpose(1, 2).reshape(batch, tokens, dim)

    def forward(self, x):
        x = x + self.proj(self.attention(self.norm1(x)))
        return x + self.fc2(F.gelu(self.fc1(self.norm2(x))))


# ---- building a network from a layer list ---------------------------------------------

def require(condition, message):
    if not condition:
        raise ConfigError(message)


def require_kind(flow, kind):
    require(flow.kind == kind, f"expects {kind} as input, but the previous layer produces {flow.describe()}")


def pair(value):
    """Return (height, width) from an integer or a [height, width] list."""
    if isinstance(value, list):
        require(len(value) == 2, f"expected an integer or [height, width], got {value}")
        return int(value[0]), int(value[1])
    return int(value), int(value)


def build_conv(spec, flow, transposed):
    """Return the module, output flow and forward FLOPs of a conv or conv_transpose layer."""
    require_kind(flow, "image")
    kernel = pair(spec["kernel"])
    padding = pair(spec.get("padding", 0))
    stride = int(spec.get("stride", 1))
    bias = bool(spec.get("bias", True))
    channels, out = flow.channels, int(spec["out"])
    if transposed:
        module = nn.ConvTranspose2d(channels, out, kernel, stride=stride, padding=padding, bias=bias)
        height = (flow.height - 1) * stride - 2 * padding[0] + kernel[0]
        width = (flow.width - 1) * stride - 2 * padding[1] + kernel[1]
        flops = 2.0 * channels * flow.height * flow.width * out * kernel[0] * kernel[1]
    else:
        module = nn.Conv2d(channels, out, kernel, stride=stride, padding=padding, bias=bias)
        height = (flow.height + 2 * padding[0] - kernel[0]) // stride + 1
        width = (flow.width + 2 * padding[1] - kernel[1]) // stride + 1
        flops = 2.0 * out * height * width * channels * kernel[0] * kernel[1]
    require(height >= 1 and width >= 1, f"the output would be empty ({height}x{width})")
    return module, Flow("image", out, height=height, width=width), flops


def build_layer(spec, flow):
    """Return the module, output flow and forward FLOPs per sample of one layer spec.

    FLOPs count the products of linear, conv and attention layers with the formulas of
    mixgan's network.c, so GFLOP/s figures of the two programs are comparable.
    """
    kind = spec["type"]
    if kind == "linear":
        require(flow.kind != "image", f"expects a vector or tokens, but the previous layer produces {flow.describe()}")
        out = int(spec["out"])
        rows = flow.tokens if flow.kind == "tokens" else 1
        module = nn.Linear(flow.channels, out, bias=bool(spec.get("bias", True)))
        return module, replace(flow, channels=out), 2.0 * rows * flow.channels * out
    if kind == "to_tokens":
        require_kind(flow, "vector")
        height, width, dim = int(spec["height"]), int(spec["width"]), int(spec["dim"])
        require(height * width * dim == flow.channels,
                f"{flow.channels} features cannot form {height}x{width} tokens of dim {dim}")
        out = Flow("tokens", dim, tokens=height * width, height=height, width=width, has_grid=True)
        return Reshape((height * width, dim)), out, 0.0
    if kind == "to_image":
        require_kind(flow, "vector")
        channels, height, width = int(spec["channels"]), int(spec["height"]), int(spec["width"])
        require(channels * height * width == flow.channels,
                f"{flow.channels} features cannot form a {channels}x{height}x{width} image")
        return Reshape((channels, height, width)), Flow("image", channels, height=height, width=width), 0.0
    if kind == "flatten":
        if flow.kind == "vector":
            size = flow.channels
        elif flow.kind == "tokens":
            size = flow.tokens * flow.channels
        else:
            size = flow.channels * flow.height * flow.width
        return Reshape((size,)), Flow("vector", size), 0.0
    if kind == "pos_embed":
        require_kind(flow, "tokens")
        return PositionalEmbedding(flow.tokens, flow.channels), flow, 0.0
    if kind == "class_token":
        require_kind(flow, "tokens")
        out = Flow("tokens", flow.channels, tokens=flow.tokens + 1)
        return ClassToken(flow.channels), out, 0.0
    if kind == "transformer":
        require_kind(flow, "tokens")
        depth, heads = int(spec["depth"]), int(spec["heads"])
        dim = flow.channels
        require(dim % heads == 0, f"dim {dim} is not divisible by heads {heads}")
        hidden = spec.get("mlp_ratio", 4.0) * dim
        require(hidden == int(hidden) and hidden >= 1,
                f"mlp_ratio {spec.get('mlp_ratio')} times dim {dim} is not a whole number of features")
        hidden = int(hidden)
        module = nn.Sequential(*[TransformerBlock(dim, heads, hidden) for _ in range(depth)])
        n = flow.tokens
        flops = depth * (n * 2.0 * (4.0 * dim * dim + 2.0 * dim * hidden) + 4.0 * n * n * dim)
        return module, flow, flops
    if kind == "tokens_to_image":
        require_kind(flow, "tokens")
        require(flow.has_grid, "the tokens do not form a grid (a class token was prepended)")
        out = Flow("image", flow.channels, height=flow.height, width=flow.width)
        return TokensToImage(flow.height, flow.width), out, 0.0
    if kind == "image_to_tokens":
        require_kind(flow, "image")
        out = Flow("tokens", flow.channels, tokens=flow.height * flow.width, height=flow.height,
                   width=flow.width, has_grid=True)
        return ImageToTokens(), out, 0.0
    if kind == "pixel_shuffle":
        require_kind(flow, "image")
        factor = int(spec.get("factor", 2))
        require(flow.channels % (factor * factor) == 0,
                f"{flow.channels} channels are not divisible by factor² = {factor * factor}")
        out = Flow("image", flow.channels // (factor * factor), height=flow.height * factor,
                   width=flow.width * factor)
        return nn.PixelShuffle(factor), out, 0.0
    if kind == "patch_merge":
        require_kind(flow, "tokens")
        require(flow.has_grid and flow.height % 2 == 0 and flow.width % 2 == 0,
                "needs tokens on a grid of even height and width")
        out = Flow("tokens", 4 * flow.channels, tokens=flow.tokens // 4, height=flow.height // 2,
                   width=flow.width // 2, has_grid=True)
        return PatchMerge(flow.height, flow.width), out, 0.0
    if kind == "select_token":
        require_kind(flow, "tokens")
        index = int(spec.get("index", 0))
        require(index < flow.tokens, f"index {index} is out of range for {flow.tokens} tokens")
        return SelectToken(index), Flow("vector", flow.channels), 0.0
    if kind == "mean_tokens":
        require_kind(flow, "tokens")
        return MeanTokens(), Flow("vector", flow.channels), 0.0
    if kind in ("conv", "conv_transpose"):
        return build_conv(spec, flow, transposed=kind == "conv_transpose")
    if kind == "batch_norm":
        require_kind(flow, "image")
        module = nn.BatchNorm2d(flow.channels, eps=spec.get("eps", 1e-5), momentum=spec.get("momentum", 0.1))
        return module, flow, 0.0
    if kind == "layer_norm":
        require(flow.kind != "image", f"expects a vector or tokens, but the previous layer produces {flow.describe()}")
        return nn.LayerNorm(flow.channels, eps=spec.get("eps", 1e-5)), flow, 0.0
    if kind == "relu":
        return nn.ReLU(), flow, 0.0
    if kind == "leaky_relu":
        return nn.LeakyReLU(float(spec["slope"])), flow, 0.0
    if kind == "gelu":
        return nn.GELU(), flow, 0.0
    if kind == "tanh":
        return nn.Tanh(), flow, 0.0
    raise ConfigError(f"unknown layer type \"{kind}\"")


def build_network(layer_specs, input_flow, role):
    """Return (nn.Sequential, output flow, forward FLOPs per sample) for a layer list.

    Raises ConfigError naming the layer, for example "discriminator[4] (transformer): ...".
    """
    modules, flow, total_flops = [], input_flow, 0.0
    for index, spec in enumerate(layer_specs):
        try:
            module, flow, flops = build_layer(spec, flow)
        except KeyError as error:
            raise ConfigError(f"{role}[{index}] ({spec.get('type')}): missing key {error}") from None
        except ConfigError as error:
            raise ConfigError(f"{role}[{index}] ({spec.get('type')}): {error}") from None
        modules.append(module)
        total_flops += flops
    return nn.Sequential(*modules), flow, total_flops


# ---- initialisation as mixgan's network_init does it ----------------------------------

def init_weight_and_bias(module, weight_std):
    if weight_std > 0:
        nn.init.normal_(module.weight, 0.0, weight_std)
    else:
        nn.init.zeros_(module.weight)
    if module.bias is not None:
        nn.init.zeros_(module.bias)


@torch.no_grad()
def init_network(network, init):
    weight_std = init.get("weight_std", 0.02)
    batch_norm_std = init.get("batch_norm_weight_std", 0.0)
    embedding_std = init.get("embedding_std", 0.02)
    for module in network.modules():
        if isinstance(module, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
            init_weight_and_bias(module, weight_std)
        elif isinstance(module, (PositionalEmbedding, ClassToken)):
            parameter = module.embedding if isinstance(module, PositionalEmbedding) else module.token
            if embedding_std > 0:
                nn.init.trunc_normal_(parameter, 0.0, embedding_std, -2 * embedding_std, 2 * embedding_std)
            else:
                nn.init.zeros_(parameter)
        elif isinstance(module, nn.BatchNorm2d):
            if batch_norm_std > 0:
                nn.init.normal_(module.weight, 1.0, batch_norm_std)
            else:
                nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)


def count_parameters(network):
    return sum(p.numel() for p in network.parameters())
