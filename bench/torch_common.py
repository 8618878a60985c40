"""Process setup and measurement helpers shared by the PyTorch benchmark scripts.

Import this module before torch, numpy or scipy: ensure_benchmark_environment() must run
before OpenMP, OpenBLAS and malloc read their settings, which they do only at start-up.
"""
import os
import resource
import sys

# Debian's python3-torch runs its own ops on an OpenMP pool and its matrix products on
# OpenBLAS's pthread pool (libblas.so.3 points to openblas-pthread by default). With the
# default settings, idle threads of each pool spin while the other pool works, which on two
# cores takes CPU time from the threads doing the work. PASSIVE makes idle OpenMP threads
# sleep, and a timeout of 4 (2^4 cycles) makes idle OpenBLAS threads sleep almost at once.
#
BENCHMARK_ENVIRONMENT = {
    "OMP_WAIT_POLICY": "PASSIVE",
    "OPENBLAS_THREAD_TIMEOUT": "4",
}

# glibc's malloc serves blocks above its mmap threshold (at most 32 MiB unless set) with
# fresh mmap()s and returns them on free. PyTorch's large activations and gradients then
# page-fault anew in every iteration, and for the transformer configs the kernel time spent
# on those faults is a sizeable part of an iteration. These thresholds make malloc keep freed
# memory for reuse instead (mallopt(3) documents both variables), which makes PyTorch faster
# and raises its peak RSS. They are added only when TORCH_KEEP_FREED_MEMORY=1 is set, so the
# default run measures PyTorch's peak RSS with glibc's default behaviour.
KEEP_FREED_MEMORY_ENVIRONMENT = {
    "MALLOC_MMAP_THRESHOLD_": str(4 << 30),
    "MALLOC_TRIM_THRESHOLD_": str(64 << 30),
}


def ensure_benchmark_environment(threads):
    """Re-execute this script with the benchmark settings added to its environment.

    Adds each variable of BENCHMARK_ENVIRONMENT, and OPENBLAS_NUM_THREADS=threads, that
    the caller has not set. Re-executes only when something was missing, so the caller's
    own values are kept. Returns normally once everything is set.
    """
    for module in ("torch", "numpy", "scipy"):
        if module in sys.modules:
            raise RuntimeError(f"ensure_benchmark_environment() must run before {module} is imported")
    required = dict(BENCHMARK_ENVIRONMENT, OPENBLAS_NUM_THREADS=str(threads))
    if os.environ.get("TORCH_KEEP_FREED_MEMORY") == "1":
        required.update(KEEP_FREED_MEMORY_ENVIRONMENT)
    missing = {name: value for name, value in required.items() if name not in os.environ}
    if not missing:
        return
    environment = dict(os.environ, **missing)
    os.execve(sys.executable, [sys.executable] + sys.argv, environment)


def describe_environment():
    """Return the benchmark's environment variables as NAME=VALUE pairs."""
    names = list(BENCHMARK_ENVIRONMENT) + list(KEEP_FREED_MEMORY_ENVIRONMENT) + ["OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"]
    return " ".join(f"{name}={os.environ.get(name, '(unset)')}" for name in names)


def peak_rss_gb():
    """Return this process's peak resident set size in GB (10^9 bytes), as mixgan reports it."""
    # Linux reports ru_maxrss in KiB.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9


def median(values):
    """Return the upper median, the same element that mixgan's benchmarks report."""
    ordered = sorted(values)
    return ordered[len(ordered) // 2]
