"""Which BLAS the running PyTorch does its matrix products in, for the benchmarks' PyTorch side.

Debian's python3-torch links libblas.so.3, which the alternatives system points at Debian's
reference BLAS (netlib, unoptimized) unless an optimized one (libopenblas0-pthread) is installed;
a ratio against the reference BLAS says nothing a user with OpenBLAS would see, so bench/run.sh
refuses to print one (issue: "Performance against an honest baseline").

    describe() -> "pytorch_blas=<openblas|reference|mkl|blis|other> blas_lib=<path>"
"""
import os


def loaded_blas():
    """(kind, path) of the BLAS library mapped into this process after a matrix product."""
    import torch

    a = torch.ones(64, 64, dtype=torch.float64)
    (a @ a).sum().item()  # make sure the BLAS is loaded and used
    paths = []
    with open("/proc/self/maps") as f:
        for line in f:
            path = line.split()[-1]
            if path.startswith("/") and path not in paths and any(
                    k in os.path.basename(path) for k in ("blas", "mkl", "blis")):
                paths.append(path)
    real = [os.path.realpath(p) for p in paths]
    for kind, key in (("openblas", "openblas"), ("mkl", "mkl"), ("blis", "blis")):
        hit = [p for p in real if key in p]
        if hit:
            return kind, hit[0]
    ref = [p for p in real if "/blas/libblas" in p]
    if ref:
        return "reference", ref[0]
    return "other", real[0] if real else "none"


def describe():
    kind, path = loaded_blas()
    return f"pytorch_blas={kind} blas_lib={path}"
