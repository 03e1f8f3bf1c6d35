"""Minimal hand-written LeNet-5 train steps, one module per framework, for benchmarks/overhead.py.

Each module exposes ``make(weights, batch_size, seed) -> step`` where ``step()`` runs one SGD step
(momentum 0.9, weight decay 2e-4, lr 1e-3) on a fixed device-resident batch and returns nothing.
"""
