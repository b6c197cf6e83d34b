"""`python -m pinpoint` (also what `torchrun -m pinpoint` runs)."""

import sys

from pinpoint.cli import main

sys.exit(main())
