import os

# Triton runs kernels on CPU tensors only through its interpreter, chosen when triton is first imported.
os.environ.setdefault("TRITON_INTERPRET", "1")
# Test tensors are tiny: threads add only synchronisation, and on a busy 2-core machine every parallel region waits
# for a free core (the suite ran several times slower with 2 threads). Subprocesses (train.py, torchrun) inherit it.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402  (after the variables above, which torch and triton read when first imported)

torch.set_num_threads(1)


import sys  # noqa: E402

import pytest  # noqa: E402


@pytest.fixture
def default_recursion_limit():
    """Python's default recursion limit for a test that needs os.makedirs' RecursionError (an out_dir 1,500 folders
    deep): torch.compile, run earlier in the same worker, raises the limit for good, and the folders were then made
    and the refused run trained instead."""
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(1000)
    yield
    sys.setrecursionlimit(limit)
