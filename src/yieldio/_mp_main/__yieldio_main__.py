"""The script of ``python -m yieldio run SCRIPT``, in a multiprocessing child.

``yieldio run`` executes the script as module ``__yieldio_main__``, so a
function or class the script defines is pickled as ``__yieldio_main__.NAME``.
A "spawn" or "forkserver" child does not have that module: multiprocessing
re-runs the script there as ``__mp_main__`` (from ``sys.modules["__main__"]
.__file__``, as for ``python SCRIPT``) and makes it the child's ``__main__``.
The child inherits its parent's ``sys.path``, where ``yieldio run`` put this
module's directory; so unpickling imports this module, which makes
``__yieldio_main__`` another name for that re-run script.
"""

import sys

sys.modules[__name__] = sys.modules["__main__"]
