"""Small helpers shared by the package and its C++ extension."""
import numbers

import numpy as np


def json_default(obj):
    """json.dumps fallback: numpy scalars and arrays become plain numbers and lists."""
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, numbers.Integral):
        return int(obj)
    if isinstance(obj, numbers.Real):
        return float(obj)
    raise TypeError(f"{type(obj).__name__} is not a configuration value")
