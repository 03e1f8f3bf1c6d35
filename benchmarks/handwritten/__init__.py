"""Minimal hand-written LeNet-5 train steps, one module per framework, for benchmarks/overhead.py.

Each module exposes ``make(weights, images, labels) -> step`` where ``step()`` runs one SGD step
(momentum 0.9, weight decay 2e-4, lr 1e-3) on a fixed device-resident batch and returns nothing. A step that
only dispatches (jax) carries ``step.synchronize()``, which waits for every step dispatched so far.
"""
