"""Person proposals per keyframe: from a pickle, a simulation, or a torchvision detector."""

from pipeline.proposals.metrics import proposal_metrics
from pipeline.proposals.pickle_source import proposals_from_pickle
from pipeline.proposals.simulate import SimulatedDetector
from pipeline.proposals.table import PROPOSAL_SCHEMA, read_proposals, write_proposals

__all__ = ["PROPOSAL_SCHEMA", "SimulatedDetector", "proposal_metrics", "proposals_from_pickle",
           "read_proposals", "write_proposals"]
