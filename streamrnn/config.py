"""Runtime knobs shared by the kernels.

The kernels read these at compile time; tests may patch them before the first
kernel call of a process.
"""

#: LLVM fast-math flags for every kernel. Never ``fastmath=True``: its ``nnan``
#: and ``ninf`` flags delete the finiteness checks the non-finite policy needs.
FASTMATH = {"reassoc", "contract", "nsz", "arcp"}

#: Cache compiled kernels on disk (``__pycache__`` beside the sources).
CACHE = True
