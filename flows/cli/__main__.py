"""``python -m flows.cli``: the ``emotion`` command."""

import sys

from flows.cli import main

sys.exit(main())
