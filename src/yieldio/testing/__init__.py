"""Tools for testing concurrent code deterministically.

* :class:`VirtualClock` -- time that moves only when the program is idle
  (``autojump=True``), so hours of timeouts run in milliseconds;
* :func:`wait_all_tasks_blocked` -- wait until every other task is stuck;
* :func:`explore` -- run a test under many seeded schedules
  (``yieldio.run(main, seed=N)``) and report a seed that fails;
* :func:`memory_stream_pair` -- two connected in-memory :class:`~yieldio.Stream` s;
* :class:`SimNetwork` -- an in-memory TCP/Unix network with latency,
  bandwidth, resets, stalls and partitions, in virtual time;
* :func:`check_stream` -- the conformance suite every Stream must pass;
* a pytest plugin (``@pytest.mark.yieldio``, ``autojump_clock``,
  ``sim_network``, ``task_group``, ``--yieldio-seed``, ``--yieldio-explore``).

See docs/testing.md ("Testing concurrent code").
"""

from typing import TYPE_CHECKING as _TYPE_CHECKING

from ._blocked import wait_all_tasks_blocked
from ._check_stream import check_stream
from ._clock import VirtualClock
from ._explore import ExploreFailure, explore
from ._memory import MemoryStream, memory_stream_pair

if _TYPE_CHECKING:
    from ._simlink import SimConnection, SimListener, SimStream
    from ._simnet import SimNetwork, installed_network

# The simulated network builds on yieldio.net (sockets, TLS, Happy Eyeballs):
# imported on first use, so ``from yieldio.testing import VirtualClock`` stays light.
_LAZY = {
    "SimNetwork": "._simnet",
    "installed_network": "._simnet",
    "SimConnection": "._simlink",
    "SimListener": "._simlink",
    "SimStream": "._simlink",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'yieldio.testing' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    # The lazy names are not in globals() until first used: list them anyway,
    # so that dir() and tab completion show SimNetwork.
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "ExploreFailure",
    "MemoryStream",
    "SimConnection",
    "SimListener",
    "SimNetwork",
    "SimStream",
    "VirtualClock",
    "check_stream",
    "explore",
    "installed_network",
    "memory_stream_pair",
    "wait_all_tasks_blocked",
]

from .. import _name_public_exceptions  # noqa: E402 (after __all__, which it reads)

_name_public_exceptions(globals(), "yieldio.testing")
