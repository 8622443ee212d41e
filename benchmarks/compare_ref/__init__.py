"""``Submitter`` against an earlier commit: the throughput table's rows, both in one run.

``python -m benchmarks.compare_ref --ref 3c034b0`` exports ``smtpkit/`` of two git refs into
a temporary directory (``_sides``), runs every scenario of the throughput table for both in
interleaved rounds (``_rows``), each measurement in a child process that imports that
side's tree (``worker``), and prints the table of medians and new/old ratios
(``_report``); ``--instructions`` and ``--profile`` add CPU evidence that the machine's load
cannot move (``_cpu``). This file imports nothing: the worker, a child process, starts
from here.
"""
