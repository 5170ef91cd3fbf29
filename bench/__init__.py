"""aceorch's benchmarks (P1-P7): each measures a figure and its baseline side by side in one run.

``python -m bench`` runs them all, ``python -m bench p1 p3`` a few, ``--quick`` (or ``BENCH_QUICK=1``) a tiny
size. Results go to ``bench/results/<name>.json``; docs/performance.md records a full run.
"""
