"""Spatio-temporal action detection pipeline (AVA task).

Importing the package has no side effects: no registration, no I/O.
"""

__version__ = "0.1.0"
