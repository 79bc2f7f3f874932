"""The MIB layer: names, OIDs, enums, indexes and DISPLAY-HINTs for every stage.

``load_mibs`` compiles what changed (pysmi, cached under ``state_dir/mibs``)
and returns the :class:`MibTree` the rest of netalert reads; see docs/mibs.md.
"""

from __future__ import annotations

from pathlib import Path

from netalert.config.models import MibsConfig
from netalert.mib.check import check_config_names
from netalert.mib.loader import compile_mibs
from netalert.mib.node import MibNode
from netalert.mib.report import CompileReport
from netalert.mib.tree import MibTree

__all__ = ["CompileReport", "MibNode", "MibTree", "check_config_names", "compile_mibs", "load_mibs"]


def load_mibs(mibs_config: MibsConfig, state_dir: Path | None) -> MibTree:
    """Compiles changed MIB sources, loads the rest from the cache, returns the tree.

    ``mibs_config`` is the ``[mibs]`` section (``paths``, ``system_paths``). A
    broken MIB never raises: it is left out and listed in ``tree.report``.
    Call it at start, off the event loop: a first run compiles (seconds), later
    runs read the cache's snapshot of the tree (a tenth of a second), and so does a
    first run whose MIB files another state folder of this user loaded before
    (``mibs_config.shared_cache``).

    Raises:
        OSError: The cache under ``state_dir`` cannot be written.
    """
    from netalert.mib.load import load_tree

    return load_tree(
        mibs_config.paths,
        mibs_config.system_paths,
        state_dir,
        max_bytes=mibs_config.cache_max_bytes,
        shared=mibs_config.shared_cache,
        shared_trees=mibs_config.shared_cache_trees,
    )
