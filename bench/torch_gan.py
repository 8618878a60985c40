#!/usr/bin/python3
"""Time GAN training iterations in PyTorch on one of mixgan's configs.

usage: bench/torch_gan.py CONFIG [--iterations N] [--warmup W] [--threads T] [--batch B]

This is the PyTorch side of `make bench`. It builds the generator and discriminator from
the same layer-list JSON that mixgan reads, checks their parameter counts against mixgan's
reference counts, and times full training iterations the way bench/bench_train.c times
mixgan's:

- Discriminator step: draw z and run G without a graph. Fetch the real batch from an
  in-memory uint8 tensor, flipping images at random. When the config enables DiffAugment,
  augment the real and the fake batch. Run D on real and on fake as two forward passes,
  sum the two loss terms, then backward and Adam.
- Generator step: draw a fresh z, run G and augment. Run D with its parameters frozen, so
  that autograd computes no weight gradients for D. Then G loss, backward, Adam, and the
  EMA update when the config has one.

Real images are 1,024 random 32x32 pictures, as in bench_train.c, because the timing does
not depend on their content. The script prints one human-readable line and then a
machine-readable RESULT line.

It needs Debian's python3-torch, hence /usr/bin/python3. It re-executes itself with
OMP_WAIT_POLICY, OPENBLAS_THREAD_TIMEOUT and OPENBLAS_NUM_THREADS set (see torch_common.py)
when the caller has not set them, and with two malloc thresholds when
TORCH_KEEP_FREED_MEMORY=1.
"""
import argparse
import json
import math
import os
import sys
import time

import torch_common

# Parameter counts (generator, discriminator) of the reference configs, as
# `mixgan info` prints them. A network that differs from mixgan's fails this check.
REFERENCE_PARAMETERS = {
    "dcgan": (14_695_936, 2_637_312),
    "transgan": (8_415_187, 3_189_249),
    "hybrid": (7_636_131, 1_781_953),
}

IMAGE_COUNT = 1024


def parse_arguments():
    parser = argparse.ArgumentParser(description="Time GAN training iterations of a mixgan config in PyTorch.")
    parser.add_argument("config", help="mixgan model config (JSON), for example configs/hybrid.json")
    parser.add_argument("--iterations", type=int, default=20, help="timed iterations (default 20)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed iterations before them (default 2)")
    parser.add_argument("--threads", type=int, default=2, help="PyTorch and OpenBLAS threads (default 2)")
    parser.add_argument("--batch", type=int, help="batch size (default: the config's training.batch_size)")
    arguments = parser.parse_args()
    if arguments.iterations < 1:
        parser.error(f"--iterations must be at least 1, got {arguments.iterations}")
    if arguments.warmup < 0:
        parser.error(f"--warmup must not be negative, got {arguments.warmup}")
    if arguments.threads < 1:
        parser.error(f"--threads must be at least 1, got {arguments.threads}")
    if arguments.batch is not None and arguments.batch < 2:
        parser.error(f"--batch must be at least 2 (batch norm needs two samples), got {arguments.batch}")
    return arguments


ARGUMENTS = parse_arguments()
torch_common.ensure_benchmark_environment(ARGUMENTS.threads)

import torch  # noqa: E402  (imported after the environment is set)
import torch.nn.functional as F  # noqa: E402
from torch_networks import ConfigError, Flow, build_network, count_parameters, init_network  # noqa: E402


def check_parameter_counts(name, generator, discriminator):
    counts = (count_parameters(generator), count_parameters(discriminator))
    expected = REFERENCE_PARAMETERS.get(name)
    if expected is None:
        print(f"torch_gan.py: no reference parameter counts for config \"{name}\"; not checked", file=sys.stderr)
        return
    if counts != expected:
        sys.exit(f"torch_gan.py: {name}: parameter counts (generator, discriminator) are {counts}, "
                 f"but mixgan's are {expected}: the PyTorch networks do not match mixgan's")


# ---- training data and DiffAugment ----------------------------------------------------

class RandomImageLoader:
    """Batches from uint8 images (count, H, W, C) in a new random order every epoch,
    scaled to [-1, 1] as (B, C, H, W) and flipped horizontally with probability 1/2."""

    def __init__(self, images, hflip):
        self.images = images
        self.hflip = hflip
        self.order = torch.randperm(len(images))
        self.position = 0

    def next_batch(self, batch):
        chunks, needed = [], batch
        while needed > 0:
            if self.position == len(self.images):
                self.order = torch.randperm(len(self.images))
                self.position = 0
            take = min(needed, len(self.images) - self.position)
            chunks.append(self.order[self.position:self.position + take])
            self.position += take
            needed -= take
        indices = torch.cat(chunks)
        x = self.images[indices].permute(0, 3, 1, 2).contiguous().float() / 127.5 - 1.0
        if self.hflip:
            flip = torch.rand(batch) < 0.5
            x = torch.where(flip.view(-1, 1, 1, 1), x.flip(3), x)
        return x


def augment_color(x):
    """Brightness, saturation and contrast with one random factor per image each."""
    batch = x.shape[0]
    x = x + (torch.rand(batch, 1, 1, 1) - 0.5)
    mean = x.mean(dim=1, keepdim=True)
    x = (x - mean) * (torch.rand(batch, 1, 1, 1) * 2.0) + mean
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (torch.rand(batch, 1, 1, 1) + 0.5) + mean


def augment_translation(x):
    """Shift each image by up to 1/8 of its size per axis, filling with zeros."""
    batch, _, height, width = x.shape
    max_y, max_x = int(height * 0.125 + 0.5), int(width * 0.125 + 0.5)
    shift_y = torch.randint(-max_y, max_y + 1, (batch, 1, 1))
    shift_x = torch.randint(-max_x, max_x + 1, (batch, 1, 1))
    # Output pixel (i, j) reads input pixel (i - shift_y, j - shift_x) of a zero-padded copy.
    padded = F.pad(x, [max_x, max_x, max_y, max_y])
    rows = torch.arange(height).view(1, height, 1) - shift_y + max_y
    cols = torch.arange(width).view(1, 1, width) - shift_x + max_x
    images = torch.arange(batch).view(batch, 1, 1)
    # Advanced indexing around the channel slice gives (B, H, W, C).
    return padded[images, :, rows, cols].permute(0, 3, 1, 2)


def augment_cutout(x):
    """Zero one square of half the image size per image, centred uniformly at random."""
    batch, _, height, width = x.shape
    cut_h, cut_w = int(height * 0.5 + 0.5), int(width * 0.5 + 0.5)
    centre_y = torch.randint(0, height + (1 - cut_h % 2), (batch, 1, 1))
    centre_x = torch.randint(0, width + (1 - cut_w % 2), (batch, 1, 1))
    rows = torch.arange(height).view(1, height, 1)
    cols = torch.arange(width).view(1, 1, width)
    inside = ((rows >= centre_y - cut_h // 2) & (rows < centre_y - cut_h // 2 + cut_h)
              & (cols >= centre_x - cut_w // 2) & (cols < centre_x - cut_w // 2 + cut_w))
    return x * (~inside).unsqueeze(1).to(x.dtype)


AUGMENTATIONS = {"color": augment_color, "translation": augment_translation, "cutout": augment_cutout}


def diffaugment(x, policy):
    for name in policy:
        x = AUGMENTATIONS[name](x)
    return x


# ---- training ---------------------------------------------------------------------------

def discriminator_loss(loss, real_logits, fake_logits):
    if loss == "hinge":
        return F.relu(1.0 - real_logits).mean() + F.relu(1.0 + fake_logits).mean()
    ones, zeros = torch.ones_like(real_logits), torch.zeros_like(fake_logits)
    return (F.binary_cross_entropy_with_logits(real_logits, ones)
            + F.binary_cross_entropy_with_logits(fake_logits, zeros))


def generator_loss(loss, fake_logits):
    if loss == "hinge":
        return -fake_logits.mean()
    return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))


class Trainer:
    """One GAN training iteration: d_steps discriminator steps, a generator step, EMA."""

    def __init__(self, config, generator, discriminator, batch, loader):
        training = config["training"]
        self.generator, self.discriminator = generator, discriminator
        self.latent_dim = config["latent_dim"]
        self.batch = batch
        self.loader = loader
        self.loss = training["loss"]
        if self.loss not in ("hinge", "non_saturating"):
            sys.exit(f"torch_gan.py: unknown loss {self.loss!r} (expected non_saturating or hinge)")
        self.d_steps = training.get("d_steps", 1)
        self.policy = training.get("diffaugment", [])
        unknown = [name for name in self.policy if name not in AUGMENTATIONS]
        if unknown:
            sys.exit(f"torch_gan.py: unknown augmentation {unknown[0]!r} (expected color, translation or cutout)")
        adam = dict(lr=training["lr"], betas=(training["beta1"], training["beta2"]),
                    eps=training.get("adam_eps", 1e-8), weight_decay=0.0, foreach=True)
        self.adam_g = torch.optim.Adam(generator.parameters(), **adam)
        self.adam_d = torch.optim.Adam(discriminator.parameters(), **adam)
        self.ema_decay = training.get("ema_decay", 0.0)
        self.ema_parameters = self.ema_buffers = None
        if self.ema_decay > 0:
            self.ema_parameters = [p.detach().clone() for p in generator.parameters()]
            self.ema_buffers = [b.clone() for b in generator.buffers()]

    def discriminator_step(self):
        with torch.no_grad():
            fake = self.generator(torch.randn(self.batch, self.latent_dim))
        real = self.loader.next_batch(self.batch)
        real = diffaugment(real, self.policy)
        fake = diffaugment(fake, self.policy)
        loss = discriminator_loss(self.loss, self.discriminator(real), self.discriminator(fake))
        check_finite("discriminator", loss)
        self.adam_d.zero_grad(set_to_none=True)
        loss.backward()
        self.adam_d.step()

    def generator_step(self):
        fake = self.generator(torch.randn(self.batch, self.latent_dim))
        fake = diffaugment(fake, self.policy)
        # D is not updated in this step, so autograd skips its weight gradients.
        set_requires_grad(self.discriminator, False)
        loss = generator_loss(self.loss, self.discriminator(fake))
        check_finite("generator", loss)
        self.adam_g.zero_grad(set_to_none=True)
        loss.backward()
        set_requires_grad(self.discriminator, True)
        self.adam_g.step()
        if self.ema_parameters is not None:
            self.update_ema()

    @torch.no_grad()
    def update_ema(self):
        """Average the generator's parameters and copy its batch norm running statistics."""
        parameters = list(self.generator.parameters())
        torch._foreach_mul_(self.ema_parameters, self.ema_decay)
        torch._foreach_add_(self.ema_parameters, parameters, alpha=1.0 - self.ema_decay)
        for average, current in zip(self.ema_buffers, self.generator.buffers()):
            average.copy_(current)

    def iteration(self):
        for _ in range(self.d_steps):
            self.discriminator_step()
        self.generator_step()


def set_requires_grad(network, flag):
    for parameter in network.parameters():
        parameter.requires_grad_(flag)


def check_finite(network, loss):
    value = loss.item()
    if not math.isfinite(value):
        sys.exit(f"torch_gan.py: the {network} loss became {value}")


# ---- main -------------------------------------------------------------------------------

REQUIRED_KEYS = ("image_size", "channels", "latent_dim", "generator", "discriminator", "training")
REQUIRED_TRAINING_KEYS = ("loss", "lr", "beta1", "beta2")


def load_config(path):
    """Read a mixgan config and check that the keys without defaults are present."""
    try:
        with open(path, encoding="utf-8") as file:
            config = json.load(file)
    except OSError as error:
        sys.exit(f"torch_gan.py: cannot read config: {error}")
    except json.JSONDecodeError as error:
        sys.exit(f"torch_gan.py: {path}: invalid JSON: {error}")
    missing = [key for key in REQUIRED_KEYS if key not in config]
    missing += [f"training.{key}" for key in REQUIRED_TRAINING_KEYS if key not in config.get("training", {})]
    if missing:
        sys.exit(f"torch_gan.py: {path}: missing key {missing[0]}")
    return config


def main():
    arguments = ARGUMENTS
    torch.set_num_threads(arguments.threads)
    config = load_config(arguments.config)
    name = config.get("name", os.path.splitext(os.path.basename(arguments.config))[0])
    size, channels, latent_dim = config["image_size"], config["channels"], config["latent_dim"]
    batch = arguments.batch or config["training"].get("batch_size", 64)

    torch.manual_seed(config["training"].get("seed", 0))
    try:
        generator, g_out, g_flops = build_network(config["generator"], Flow("vector", latent_dim), "generator")
        image = Flow("image", channels, height=size, width=size)
        discriminator, d_out, d_flops = build_network(config["discriminator"], image, "discriminator")
    except ConfigError as error:
        sys.exit(f"torch_gan.py: {arguments.config}: {error}")
    if g_out != image:
        sys.exit(f"torch_gan.py: {arguments.config}: the generator produces {g_out.describe()}, "
                 f"expected image {channels}x{size}x{size}")
    if not (d_out.kind in ("vector", "image") and d_out.channels == 1 and max(d_out.height, d_out.width) <= 1):
        sys.exit(f"torch_gan.py: {arguments.config}: the discriminator produces {d_out.describe()}, "
                 "expected one logit")
    init = config.get("init", {})
    init_network(generator, init)
    init_network(discriminator, init)
    check_parameter_counts(name, generator, discriminator)
    generator.train()
    discriminator.train()

    images = torch.randint(0, 256, (IMAGE_COUNT, size, size, channels), dtype=torch.uint8)
    loader = RandomImageLoader(images, bool(config["training"].get("hflip", True)))
    trainer = Trainer(config, generator, discriminator, batch, loader)

    print(f"torch_gan.py: {name}: generator {count_parameters(generator)} parameters, "
          f"{g_flops / 1e9:.3f} GFLOP per image; discriminator {count_parameters(discriminator)} parameters, "
          f"{d_flops / 1e9:.3f} GFLOP per image; PyTorch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, {torch_common.describe_environment()}", file=sys.stderr)

    milliseconds = []
    for index in range(arguments.warmup + arguments.iterations):
        start = time.perf_counter()
        trainer.iteration()
        elapsed = (time.perf_counter() - start) * 1e3
        if index >= arguments.warmup:
            milliseconds.append(elapsed)

    ms = torch_common.median(milliseconds)
    # Same count as bench_train.c: D step = G forward + D forward and backward on two batches,
    # G step = G forward and backward + D forward and input-gradient backward, with backward
    # counted as twice the forward.
    flops = batch * (4.0 * g_flops + 8.0 * d_flops)
    gflops = flops / (ms * 1e-3) / 1e9
    rss = torch_common.peak_rss_gb()
    print(f"{name:<10} batch {batch}, {arguments.threads} threads: {ms:8.1f} ms/iteration "
          f"(median of {arguments.iterations}), {gflops:6.1f} GFLOP/s, peak RSS {rss:.2f} GB (PyTorch)")
    print(f"RESULT config={name} ms={ms:.1f} rss_gb={rss:.2f} batch={batch} threads={arguments.threads} "
          f"gflops={gflops:.1f}")


if __name__ == "__main__":
    main()
