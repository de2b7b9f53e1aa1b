"""The long-term feature bank: one feature per box in a sharded Zarr array + a Parquet index.

- ``layout.py``: the box table -> bank rows, sorted so a time window is one slice;
- ``writer.py``: ``BankStorage``, ``BankWriter`` (whole shards, resumable, one rank per shard),
  ``fill_bank``;
- ``reader.py``: the bank format, ``FeatureBank`` (fixed-size masked windows around keyframes);
- ``window.py``: ``BankWindow``, the window a head reads (torch-free, for the lfb params group).

Import from the modules: the reader alone stays free of pandas for data-loader workers.
"""
