"""Heads on top of the trained baseline: the DAG's last three stages.

- ``inputs.py``: the dataset files of one run and the test-time keyframe datasets built on them;
- ``maps.py``: the frozen backbone's time-pooled maps of every keyframe, computed once, and the
  head run on them (a frozen backbone makes this exact);
- ``bank.py``: ``infer_lfb``, the long-term feature bank filled by the baseline;
- ``train.py``: ``train_head``, a classifier/ACRN/LFB head trained on the bank and the maps;
- ``report.py``: ``evaluate_head``, val results, metrics, plots and rendered keyframes.
"""
