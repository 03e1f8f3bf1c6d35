"""``python -m harness ...`` is ``convbench ...`` (works from a source checkout, before installing)."""
from __future__ import annotations

import sys

from harness.commands.cli import main

sys.exit(main())
