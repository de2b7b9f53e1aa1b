"""Person proposals per keyframe: the proposals table and its one filter (``table.py``), from a
pickle (``pickle_source.py``), a simulation (``simulate.py``) or a torchvision detector
(``torchvision_detector.py``, ``architectures.py``), and their recall (``metrics.py``).

Import from the modules; this package imports none of them, so that ``stad --help`` (which
lists the detector architectures) loads without pandas or torch.
"""
