"""Control methods: the registry and the built-ins (importing this module registers them)."""

from .base import MAX_GRID_POINTS, REGISTRY, Method, check_grid, get_method, register
from .diffmean import DiffMean
from .prompting import PromptControl, Prompting
from .reps import RePS
from .sft import SFT
from .split import SPLIT

__all__ = ["MAX_GRID_POINTS", "REGISTRY", "DiffMean", "Method", "PromptControl", "Prompting", "RePS", "SFT", "SPLIT", "check_grid", "get_method", "register"]
