"""``python -m tftrt`` runs the command line."""

import sys

from tftrt.cli import main

sys.exit(main())
