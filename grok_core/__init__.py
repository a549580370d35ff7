"""grok_core: the science behind grokbook (Gu et al. 2025, "Beyond Progress Measures").

Tasks and splits, batched models, a full-batch trainer with progress measures, and a run store.
"""
from .config import RunConfig
from .tasks import FUNCTIONS

__version__ = "0.1.0"
__all__ = ["RunConfig", "FUNCTIONS", "__version__"]
