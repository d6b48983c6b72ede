"""``python -m recomart_pipeline``: the same CLI as the ``recomart-pipeline`` script."""

import sys

from recomart_pipeline.cli import main

sys.exit(main())
