"""ihlab from Python: tasks, models, training, results and analysis (README "Python module")."""
from ._ihlab import (ConfigError, Error, Model, Task, analysis, list_models, list_reproductions, list_tasks,
                     num_threads, resolve_config, set_threads)
from .training import reproduce, train
from .results import Run, Sweep
from .export import export_transformer_lens

__all__ = ["ConfigError", "Error", "Model", "Task", "Run", "Sweep", "analysis", "train", "reproduce",
           "resolve_config", "list_tasks", "list_models", "list_reproductions", "set_threads", "num_threads",
           "export_transformer_lens"]
