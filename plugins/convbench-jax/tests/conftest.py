"""Enables convbench's conformance kit for this suite; pyproject.toml names the framework (jax) and reference.
The kit's checks join the session as harness/testing/{contract,training,capabilities,speed}.py::Test...
(select with -k as usual, e.g. -k contract)."""
pytest_plugins = ["harness.testing"]
