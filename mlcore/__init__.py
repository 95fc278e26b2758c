__version__ = "0.2.0"
# mlcore 0.1 module paths (mlcore.scoring, ...) keep working: see mlcore.core.compat
from .core.compat import install as _install_old_paths
_install_old_paths()
