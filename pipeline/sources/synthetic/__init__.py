"""Embedded synthetic dataset for the AVA task: short mp4s with AVA-format annotations.

``generate_dataset(out_dir, SyntheticConfig(...))`` writes everything; the classes, their
groups and where their evidence lies are described in :mod:`pipeline.sources.synthetic.classes`.
"""

from pipeline.sources.synthetic.classes import (ACTION_CLASSES, GROUPS, ActionClass,
                                                synthetic_label_map)
from pipeline.sources.synthetic.config import SyntheticConfig
from pipeline.sources.synthetic.generate import (annotation_path, exclusions_path,
                                                generate_dataset, label_map_path, video_id)

__all__ = ["ACTION_CLASSES", "GROUPS", "ActionClass", "SyntheticConfig", "annotation_path",
           "exclusions_path", "generate_dataset", "label_map_path", "synthetic_label_map",
           "video_id"]
