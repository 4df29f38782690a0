"""serveplan: placement of deep-learning models on serving clusters.

Exact MILP formulations, approximation algorithms, and simulators for two problems:
server chain composition (pipeline-parallel LLM serving over heterogeneous servers) and
multi-model placement with model parallelism (AlpaServe-style).
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
