"""``stad detect``: run a trained detector over any video file (mmaction2's spatio-temporal demo).

Frames are read as the model's frame store read them: the same decoder, resize at decode time
(the checkpoint's ``frame_short_side``), timeline (AVA's 30 fps: frame ``k`` is the source frame
shown at ``k / 30`` s, whatever the video's rate; or the video's own frames) and keyframe
convention (``pyslowfast``: second ``t`` is frame ``round(fps * (t - timestamp_start))``;
``mmaction2``: one frame later). For every keyframe (``rate`` per second, whole seconds from
``start`` to ``end``) the model reads the clip the store would hold (``config.clip_len``
frames ``config.frame_interval`` apart, the keyframe at ``clip_len // 2``, indices clamped at
the video's ends), rescaled to the test short side by the training code's own transform, and
scores the person boxes given for it, keyframes batched, through the same function
``evaluate`` runs (``pipeline.engine.maps.score_clips``). The frames are decoded once, in
order, holding only a few clips (``VideoSource.iter_clips``): memory does not grow with the
video. Checkpoints that record no clock or size (older files, converted zoo checkpoints) read
the video's own frames at the source size, ``pyslowfast``.

Feature-bank heads (``lfb_*``) first build the video's own bank, as ``infer_lfb`` builds a val
video's rows: the baseline the head's checkpoint records (``BankRecipe``) runs over every
second within the window's reach of the scored keyframes, its proposals filtered by the bank's
own rule (``pipeline.lfb.layout.proposal_rows``), features stored in the bank's dtype by the
bank writer; the head then reads its windows from it as ``evaluate`` does. A converted zoo
head records no baseline: ``bank_baseline`` names one (mmaction2's bank-inference model,
converted), with mmaction2's bank rules.

Outputs in ``out_dir``:

- ``detections.csv``: AVA result rows (``video_id`` = the file stem, ``timestamp`` = whole
  seconds, ``timestamp_start`` + seconds from the video's start; normalised boxes), every class
  scoring > ``MIN_ACTION_SCORE`` as the training stage writes them for evaluation;
- ``detections.parquet``: the same rows (float32, the precision the model produced);
- ``annotated.mp4`` (unless ``write_video`` is off): every frame of the video at its own size
  (enlarged by a whole factor, nearest neighbour, when its short side is under
  ``ANNOTATED_MIN_SHORT_SIDE``), frame rate and frame count, each keyframe's detections held
  from its frame for one keyframe period, every person box drawn with its ``top_k`` actions
  scoring >= ``score_threshold``;
- ``bank/`` (feature-bank heads): the video's feature bank (``pipeline.lfb`` format).

Person boxes come from exactly one source: a proposals file (an mmaction2/AVA pickle keyed
``"video_id,timestamp"`` or the pipeline's proposals Parquet), filtered with mmaction2's rule as
training and evaluation filter the same file (score >= ``min(person_threshold, best score of
the keyframe)``, so each keyframe keeps its best box); or a torchvision Faster R-CNN run on
the keyframe's frame (as the store holds it, like the DAG's detector proposals), keeping persons
scoring >= ``person_threshold`` (mmaction2's demo rule: no fallback, a frame without a confident
person has no detections). A keyframe without boxes has no detections (training and
evaluation would score the whole frame instead; every other keyframe scores as there).

Timestamps stay whole seconds because the AVA result format (and every reader of it here)
stores integers, so ``rate`` must be 1/N keyframes per second (1, 0.5, ...).

The package, one concept a module (``pipeline.detect_command`` is the command line):

- ``config``: ``DetectConfig``, the run's settings, checked once (torch-free, so the command
  line can build it before torch loads);
- ``persons``: the person boxes of each keyframe, from a proposals file or a person detector;
- ``keyframes``: ``VideoDetection``, one video's keyframes, their clips and their scoring;
- ``bank``: the video's own feature bank, for ``lfb_*`` heads;
- ``outputs``: the class names, the CSV/Parquet tables and the annotated video;
- ``run``: ``detect_video``, which ties them together.
"""
