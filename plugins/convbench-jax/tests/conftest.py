"""Enables convbench's conformance kit for this suite; pyproject.toml names the framework (jax) and reference."""
pytest_plugins = ["harness.testing"]
