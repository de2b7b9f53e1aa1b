"""AVA frame-level mAP, agreeing with the reference evaluators and much faster:
``evaluator.py`` (``evaluate``, ``evaluate_files``), ``protocols.py`` (the four protocols and
their rules), ``matching.py``, ``average_precision.py``, ``top_k.py``, ``official_csv.py``,
``summary.py`` (metrics files and plots), ``command.py`` (``stad eval``).

Import from the modules; this package imports none of them, so that ``stad --help`` and
``protocols.py``'s constants load without pandas.
"""
