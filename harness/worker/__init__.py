"""The framework side of the process boundary: ``python -m harness.worker``.

Everything here runs inside a worker process, the only kind of process that imports a deep-learning
framework (through its plugin): a cell (``train_cell``, ``speed_cell`` over ``context``, ``training`` and
``timing``), or a job for another command (``jobs``: probe, eval, verify logits, CPU GEMM peak). It never
imports the orchestrator or the commands; ``protocol`` is what both sides agree on.
"""
