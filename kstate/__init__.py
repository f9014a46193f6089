"""kstate: Kubernetes' control plane as explicit, declarative state machines.

One lifecycle definition (``kstate.machines``) is run by three executors: the engine
(api server, store, controllers, node agents, real containers), the model checker
(``kstate.verify``) and the renderer / property tester. See ARCHITECTURE and README.

The curated public API is re-exported here as the layers land; import submodules
directly for everything else.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
