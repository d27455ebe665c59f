"""``python -m edge_ingest``: the same as the ``edge-ingest`` command."""

import sys

from edge_ingest.cli import main

sys.exit(main())
