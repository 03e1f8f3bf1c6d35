"""convbench's built-in framework plugins: one subpackage per framework, each imported lazily."""
