"""The old refund report script (Python 2)."""

import os


def report():
    print "refunds enabled:", os.environ["ENABLE_REFUND_TOOL"]
