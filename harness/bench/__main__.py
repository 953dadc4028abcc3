"""``python -m harness.bench``: the speed benchmark (harness.bench.run)."""
import sys

from harness.bench.run import main

sys.exit(main())
