"""``python -m harness.results.schema``: rewrites row.schema.json from harness/results/records.py."""
from harness.results.schema import write_row_schema

print(write_row_schema())
