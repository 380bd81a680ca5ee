"""The trust calibration of a model, as a script: ``live-restore calibrate-trust`` does the same.

python benchmarks/calibrate_trust.py dfcan-sr2x-tiny [--fields 2] [--head-steps 2000]
"""

from __future__ import annotations

import sys

from live_restore._cli import app

if __name__ == "__main__":
    app(["calibrate-trust", *sys.argv[1:]])
