"""matplotlib's pyplot on the Agg backend, imported when the first figure is drawn.

Deferred because importing pyplot takes about 0.3 s, which every job would otherwise pay
before its first step; figures are drawn at the end of a run. Agg: no display on TPU VMs or CI.
"""

from types import ModuleType


def pyplot() -> ModuleType:
    """matplotlib.pyplot with the headless Agg backend selected."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
