import sys

from recomart_pipeline.cli import main

sys.exit(main())
