"""fireside: run open large language models locally.

The native layer lives in :mod:`fireside._core`; the public API is re-exported here.
"""

import logging as _logging

# llama.cpp's messages go to the "fireside.llama" logger; print nothing unless the
# application configures logging.
_logging.getLogger("fireside").addHandler(_logging.NullHandler())

from fireside import errors  # noqa: E402

__version__ = "0.1.0"

__all__ = ["errors", "__version__"]
