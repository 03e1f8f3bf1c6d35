"""No data parallel: the JAX plugin's FrameworkSpec declares none, so convbench runs --nproc/--devices cells of jax
as unavailable and never builds a model for them."""
