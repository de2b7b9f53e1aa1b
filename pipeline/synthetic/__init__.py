"""Embedded synthetic dataset for the AVA task: short mp4s with AVA-format annotations.

``generate_dataset(out_dir, SyntheticConfig(...))`` writes everything; the classes, their
groups and where their evidence lies are described in :mod:`pipeline.synthetic.classes`.
"""

from pipeline.synthetic.classes import ACTION_CLASSES, GROUPS, ActionClass, synthetic_label_map
from pipeline.synthetic.config import SyntheticConfig
from pipeline.synthetic.dataset import (annotation_path, exclusions_path, generate_dataset,
                                        label_map_path, video_id)

__all__ = ["ACTION_CLASSES", "GROUPS", "ActionClass", "SyntheticConfig", "annotation_path",
           "exclusions_path", "generate_dataset", "label_map_path", "synthetic_label_map",
           "video_id"]
