"""``python -m ensemble``: the ensemble command line."""

import sys

from ensemble.cli import main

sys.exit(main())
