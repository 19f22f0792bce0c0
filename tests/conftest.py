import os

# Triton runs kernels on CPU tensors only through its interpreter, chosen when triton is first imported.
os.environ.setdefault("TRITON_INTERPRET", "1")
