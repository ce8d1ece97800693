"""harmmap: crime-harm mapping for the Police Race Action Plan pilot forces."""

import os

__version__ = "0.1.0"

# pyarrow allocates from jemalloc, which hands freed memory back to the system: a load frees tens of
# megabytes a block, and with pyarrow's default (mimalloc) a 5M-row police.uk file peaked at 986 MiB
# instead of 855 MiB, at the same speed (bench/). pyarrow reads this once, when it is first imported,
# which is why it is set here; a value already in the environment wins.
os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "jemalloc")
